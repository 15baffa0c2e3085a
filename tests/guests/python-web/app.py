"""Coroutines over the host, the store, config and signed cookies, from
Python, for tests/python.rs (served at /py beside Rust apps)."""

import asyncio
import logging

import squall
from squall import jobs, kv, queues
from squall.httpclient import AsyncHTTPClient, FetchError, HTTPClientError
from squall.web import Application, RequestHandler


class Fetch(RequestHandler):
    async def get(self):
        try:
            response = await squall.fetch(self.get_argument("url"), raise_error=False)
        except FetchError as error:
            self.set_status(502)
            self.write("fetch failed: %s" % error.kind)
            return
        self.write("%d %d" % (response.code, len(response.body)))


class Strict(RequestHandler):
    """A non-2xx answer raises, as in Tornado."""

    async def get(self):
        try:
            await AsyncHTTPClient().fetch(self.get_argument("url"))
        except HTTPClientError as error:
            self.write("raised %d" % error.code)


class FanOut(RequestHandler):
    async def get(self):
        url = self.get_argument("url")
        n = int(self.get_argument("n"))
        responses = await asyncio.gather(*(squall.fetch(url + "?%d" % i) for i in range(n)))
        self.write(" ".join(response.body.decode() for response in responses))


class Timeout(RequestHandler):
    async def get(self):
        seconds = float(self.get_argument("s"))
        try:
            response = await squall.with_timeout(seconds, squall.fetch(self.get_argument("url")))
            self.write("in time: " + response.text)
        except squall.gen.TimeoutError:
            self.write("timed out")


class Spawn(RequestHandler):
    async def get(self):
        url = self.get_argument("url")

        async def after_the_response():
            await squall.fetch(url, method="POST", body="sent after the response")

        squall.spawn(after_the_response())
        self.write("spawned")


class Events(RequestHandler):
    """Server-sent events: the first at once, the second when /py/poke
    publishes to the `events` topic."""

    async def get(self):
        kept = await squall.pubsub.wait("events", after=0, timeout=0)
        latest = kept[-1].id if kept else 0
        self.set_header("Content-Type", "text/event-stream")
        self.write("data: first\n\n")
        await self.flush()
        news = await squall.pubsub.wait("events", after=latest, timeout=30)
        self.write("data: %s\n\n" % (news[0].text if news else "nothing"))


class Poke(RequestHandler):
    def post(self):
        self.write(str(squall.pubsub.publish("events", self.request.body)))


class Count(RequestHandler):
    async def post(self):
        self.write(str(await kv.increment("visits")))


class Stored(RequestHandler):
    async def put(self, key):
        await kv.set(key, self.request.body)
        self.set_status(204)

    async def get(self, key):
        value = await kv.get(key)
        if value is None:
            self.send_error(404)
            return
        self.write(value)


class Greeting(RequestHandler):
    def get(self):
        self.write(squall.config_value("greeting", "no greeting"))


class Login(RequestHandler):
    def get(self):
        self.set_signed_cookie("user", self.get_argument("user"))
        self.write("set")


class WhoAmI(RequestHandler):
    def get(self):
        user = self.get_signed_cookie("user")
        self.write(user.decode() if user else "absent")


class Remind(RequestHandler):
    """Keeps a `remind` job (cancelled at once with ?cancel=1)."""

    async def post(self):
        job_id = await jobs.after(float(self.get_argument("delay", "0")), "remind", self.request.body)
        if self.get_argument("cancel", None):
            self.write("cancelled %s" % await jobs.cancel(job_id))
            return
        self.write(job_id)


class Send(RequestHandler):
    """Sends the body to the `py-work` queue."""

    async def post(self):
        self.write(await queues.send("py-work", self.request.body))


async def work(batch):
    """The `py-work` consumer: `again` is retried once, the rest acknowledged."""
    for message in batch.messages:
        logging.info("python work %s attempt %d", message.payload.decode(), message.attempt)
        if message.payload == b"again" and message.attempt < 2:
            message.retry()


async def remind(job):
    """The `remind` job: fails its first attempt, then logs."""
    if job.attempt < 2:
        raise RuntimeError("not on the first attempt")
    logging.info("python job %s attempt %d (%s)", job.name, job.attempt, job.payload.decode())


async def tally(tick):
    """The `tally` schedule: counts its ticks in the store."""
    count = await kv.increment("ticks")
    logging.info("python tick %d (%s, due %s)", count, tick.payload.decode(), tick.scheduled_at > 0)


def make_app():
    application = Application(
        [
            (r"/py/fetch", Fetch),
            (r"/py/strict", Strict),
            (r"/py/fanout", FanOut),
            (r"/py/timeout", Timeout),
            (r"/py/spawn", Spawn),
            (r"/py/count", Count),
            (r"/py/events", Events),
            (r"/py/poke", Poke),
            (r"/py/store/([a-z]+)", Stored),
            (r"/py/greeting", Greeting),
            (r"/py/login", Login),
            (r"/py/whoami", WhoAmI),
            (r"/py/remind", Remind),
            (r"/py/send", Send),
        ]
    )
    application.on_schedule("tally", tally)
    application.on_job("remind", remind)
    application.consumer("py-work", work)
    return application
