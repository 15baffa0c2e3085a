"""Handlers tested under plain CPython: `squall test .` (host calls such as
`squall.sleep` or `pubsub` need `squall serve`)."""

import unittest

from squall.testing import AsyncHTTPTestCase

import app


class AppTest(AsyncHTTPTestCase):
    def get_app(self):
        return app.make_app()

    def test_an_unknown_path_is_404(self):
        self.assertEqual(self.fetch("/no/such/page").code, 404)


if __name__ == "__main__":
    unittest.main()
