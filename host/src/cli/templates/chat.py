"""A chat room in Python: messages go to the host's `room` topic; clients
long-poll `/messages?after=ID` or hold a WebSocket at `/socket`."""

import json

from squall import pubsub
from squall.web import Application, RequestHandler
from squall.websocket import WebSocketHandler

TOPIC = "room"


class Messages(RequestHandler):
    async def get(self):
        after = int(self.get_argument("after", "0"))
        found = await pubsub.wait(TOPIC, after=after, timeout=25)
        self.write({"messages": [dict(json.loads(m.text), id=m.id) for m in found]})

    def post(self):
        body = self.get_argument("body")
        self.write({"id": pubsub.publish(TOPIC, json.dumps({"body": body}))})


class Socket(WebSocketHandler):
    def open(self):
        # The host forwards the room to this client without waking the app.
        self.subscribe(TOPIC)

    def on_message(self, message):
        pubsub.publish(TOPIC, json.dumps({"body": message}))


def make_app():
    return Application([(r"/messages", Messages), (r"/socket", Socket)])
