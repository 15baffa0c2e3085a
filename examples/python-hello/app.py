"""Hello, world — Tornado's first example, served by Squall."""

import logging

import squall
from squall.web import Application, HTTPError, RequestHandler


class MainHandler(RequestHandler):
    async def get(self):
        self.write("Hello, world")


class GreetHandler(RequestHandler):
    async def get(self, name):
        greeting = self.get_argument("greeting", "Hello")
        self.write(f"{greeting}, {name}!")


class ItemHandler(RequestHandler):
    def initialize(self, store):
        self.store = store

    async def get(self, item_id):
        if item_id not in self.store:
            raise HTTPError(404, "no item %s", item_id)
        self.write({"id": int(item_id), "name": self.store[item_id]})

    async def post(self, item_id):
        name = self.get_argument("name")  # 400 "Missing argument name" if absent
        self.set_status(201)
        self.write({"id": int(item_id), "name": name})


class NapHandler(RequestHandler):
    async def get(self):
        seconds = float(self.get_argument("s", "0.05"))
        started = squall.monotonic()
        await squall.sleep(seconds)
        self.write(f"slept {squall.monotonic() - started >= seconds}")


class CookieHandler(RequestHandler):
    async def get(self):
        visits = int(self.get_cookie("visits", "0")) + 1
        self.set_cookie("visits", str(visits), httponly=True)
        self.write(f"visit {visits}")


class BrokenHandler(RequestHandler):
    async def get(self):
        logging.info("about to fail")
        raise ValueError("the secret is 42")


class HomeHandler(RequestHandler):
    async def get(self):
        self.redirect(self.reverse_url("greet", "world"))


def make_app():
    return Application(
        [
            (r"/", MainHandler),
            (r"/greet/([^/]+)", GreetHandler, None, "greet"),
            (r"/items/(\d+)", ItemHandler, {"store": {"1": "kettle"}}),
            (r"/nap", NapHandler),
            (r"/visits", CookieHandler),
            (r"/broken", BrokenHandler),
            (r"/home", HomeHandler),
        ]
    )
