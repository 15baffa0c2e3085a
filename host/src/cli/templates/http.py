"""A Squall app in Python: `squall serve .` then `curl http://127.0.0.1:8080/hello/you`."""

from squall.web import Application, RequestHandler


class MainHandler(RequestHandler):
    async def get(self):
        self.write("Hello from Squall!")


class HelloHandler(RequestHandler):
    async def get(self, name):
        self.write({"greeting": "Hello, %s!" % name})


def make_app():
    return Application(
        [
            (r"/", MainHandler),
            (r"/hello/([^/]+)", HelloHandler),
        ]
    )
