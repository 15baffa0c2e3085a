"""A WebSocket echo in Python: `squall serve .`, then connect to ws://127.0.0.1:8080/echo."""

from squall.web import Application, RequestHandler
from squall.websocket import WebSocketHandler


class MainHandler(RequestHandler):
    async def get(self):
        self.write("Connect a WebSocket to /echo")


class EchoHandler(WebSocketHandler):
    def open(self):
        # Hibernate mode: this object lives for one event; keep what must
        # outlast it in self.state (the host holds it between events).
        self.state["messages"] = 0

    def on_message(self, message):
        self.state["messages"] += 1
        self.write_message("#%d: %s" % (self.state["messages"], message))


def make_app():
    return Application([(r"/", MainHandler), (r"/echo", EchoHandler)])
