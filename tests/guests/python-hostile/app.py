"""A Python tenant that misbehaves on request, for tests/python.rs."""

import logging

import squall
from squall.web import Application, RequestHandler


class HogHandler(RequestHandler):
    """Allocates until something stops it."""

    async def get(self):
        hoard = []
        while True:
            hoard.append(bytearray(1 << 20))


class SpinHandler(RequestHandler):
    """Never yields."""

    async def get(self):
        n = 0
        while True:
            n += 1


class FloodHandler(RequestHandler):
    """Logs far more than any log budget."""

    async def get(self):
        for n in range(2_000):
            logging.warning("flood line %d with some padding to make it longer", n)
        self.write("flooded")


class NapHandler(RequestHandler):
    """Says it naps, then naps on the host's timer."""

    async def get(self):
        logging.info("napping for a while")
        await squall.sleep(float(self.get_argument("s")))
        self.write("rested")


class FineHandler(RequestHandler):
    async def get(self):
        self.write("fine")


def make_app():
    return Application(
        [
            (r"/hog", HogHandler),
            (r"/spin", SpinHandler),
            (r"/flood", FloodHandler),
            (r"/nap", NapHandler),
            (r"/", FineHandler),
        ]
    )
