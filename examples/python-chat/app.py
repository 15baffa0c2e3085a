# Tornado's chat demo (demos/chat/chatdemo.py, with the WebSocket handler of
# demos/websocket/chatdemo.py), ported to Squall: `squall serve
# examples/python-chat`, then open http://127.0.0.1:8080/ in two tabs
# (`?transport=ws` for the WebSocket).
#
# Copyright 2009 Facebook; Licensed under the Apache License, Version 2.0.
#
# What changed from Tornado's demo: there is no shared memory between
# requests (each runs in its own sandboxed instance), so the message buffer
# is the host's `chat` topic, which keeps the last 200 messages; a long poll
# waits on the topic instead of a Condition; and a socket subscribes to the
# topic instead of joining a set of waiters; the cookie secret comes from
# the app's config (squall.toml), not from code.

import json
import logging
import os.path
import uuid

from squall import pubsub
from squall.web import Application, HTTPError, RequestHandler
from squall.websocket import WebSocketHandler

TOPIC = "chat"
# How long a long poll waits for news before answering an empty list.
LONG_POLL = 25


class MessageBuffer:
    async def get_messages_since(self, cursor, wait=0):
        """Returns a list of messages newer than the given cursor.

        ``cursor`` should be the ``id`` of the last message received.
        """
        cache = await self.cache()
        results = []
        for msg in reversed(cache):
            if msg["id"] == cursor:
                break
            results.append(msg)
        results.reverse()
        if results or not wait:
            return results
        last = cache[-1]["seq"] if cache else 0
        news = await pubsub.wait(TOPIC, after=last, timeout=wait)
        return [dict(json.loads(m.text), seq=m.id) for m in news]

    async def cache(self):
        kept = await pubsub.wait(TOPIC, after=0, timeout=0)
        return [dict(json.loads(m.text), seq=m.id) for m in kept]

    def add_message(self, message):
        pubsub.publish(TOPIC, json.dumps(message))


global_message_buffer = MessageBuffer()


class MainHandler(RequestHandler):
    async def get(self):
        self.render("index.html", messages=await global_message_buffer.cache())


class MessageNewHandler(RequestHandler):
    """Post a new message to the chat room."""

    def post(self):
        message = {"id": str(uuid.uuid4()), "body": self.get_argument("body")}
        # render_string() returns a byte string, which is not supported
        # in json, so we must convert it to a character string.
        message["html"] = self.render_string("message.html", message=message).decode("utf-8")
        if next := self.get_argument("next", None):
            if next.startswith("//") or not next.startswith("/"):
                # Absolute URLs are not allowed because this would be an open redirect
                # vulnerability (https://cwe.mitre.org/data/definitions/601.html).
                raise HTTPError(400)
            self.redirect(next)
        else:
            self.write(message)
        global_message_buffer.add_message(message)


class MessageUpdatesHandler(RequestHandler):
    """Long-polling request for new messages.

    Waits until new messages are available before returning anything.
    """

    async def post(self):
        cursor = self.get_argument("cursor", None)
        messages = await global_message_buffer.get_messages_since(cursor, wait=LONG_POLL)
        self.write(dict(messages=messages))


class ChatSocketHandler(WebSocketHandler):
    def open(self):
        # The host sends the topic's messages to the socket: no waiter set.
        self.subscribe(TOPIC)

    def on_message(self, message):
        logging.info("got message %r", message)
        parsed = json.loads(message)
        chat = {"id": str(uuid.uuid4()), "body": parsed["body"]}
        chat["html"] = self.render_string("message.html", message=chat).decode("utf-8")
        global_message_buffer.add_message(chat)


def make_app():
    return Application(
        [
            (r"/", MainHandler),
            (r"/a/message/new", MessageNewHandler),
            (r"/a/message/updates", MessageUpdatesHandler),
            (r"/chatsocket", ChatSocketHandler),
        ],
        template_path=os.path.join(os.path.dirname(__file__), "templates"),
        static_path=os.path.join(os.path.dirname(__file__), "static"),
        xsrf_cookies=True,
    )
