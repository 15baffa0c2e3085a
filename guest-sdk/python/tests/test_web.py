"""The Python SDK's pure parts under plain CPython:
`PYTHONPATH=guest-sdk/python python3 -m unittest discover -s guest-sdk/python/tests`."""

import json
import unittest

from squall import security
from squall.testing import AsyncHTTPTestCase
from squall.web import Application, HTTPError, RequestHandler, authenticated


class Item(RequestHandler):
    def initialize(self, names):
        self.names = names

    async def get(self, item_id):
        if item_id not in self.names:
            raise HTTPError(404, "no item %s", item_id)
        self.write({"id": item_id, "name": self.names[item_id], "tags": self.get_arguments("tag")})


class Named(RequestHandler):
    def get(self, org, repo):
        self.write("%s/%s" % (org, repo))


class Login(RequestHandler):
    def post(self):
        self.set_signed_cookie("user", self.get_argument("user"))
        self.redirect(self.get_argument("next", "/"))


class Secret(RequestHandler):
    def get_current_user(self):
        return self.get_signed_cookie("user")

    @authenticated
    async def get(self):
        self.write(b"hello " + self.current_user)


class Form(RequestHandler):
    def get(self):
        self.write(self.xsrf_form_html())

    def post(self):
        self.write("posted")


def app(**settings):
    return Application(
        [
            (r"/items/(\d+)", Item, {"names": {"1": "kettle"}}, "item"),
            (r"/repos/(?P<org>[^/]+)/(?P<repo>[^/]+)", Named),
            (r"/login", Login),
            (r"/secret", Secret),
            (r"/form", Form),
        ],
        cookie_secret="a secret that is long enough",
        **settings,
    )


class RoutingAndArguments(AsyncHTTPTestCase):
    def get_app(self):
        return app()

    def test_groups_become_arguments_and_dicts_become_json(self):
        response = self.fetch("/items/1?tag=a&tag=%20b%20")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers["Content-Type"], "application/json; charset=UTF-8")
        self.assertEqual(json.loads(response.body), {"id": "1", "name": "kettle", "tags": ["a", "b"]})
        self.assertEqual(self.fetch("/repos/squall/sdk").text, "squall/sdk")

    def test_errors_name_their_status_and_keep_their_log_message_private(self):
        missing = self.fetch("/items/2")
        self.assertEqual(missing.code, 404)
        self.assertNotIn("no item", missing.text)
        self.assertEqual(self.fetch("/nowhere").code, 404)
        self.assertEqual(self.fetch("/items/1", method="DELETE").code, 405)
        self.assertEqual(self.fetch("/login", method="POST").code, 400)

    def test_reverse_url_fills_groups(self):
        self.assertEqual(self._app.reverse_url("item", 7), "/items/7")


class SignedCookiesAndLogin(AsyncHTTPTestCase):
    def get_app(self):
        return app()

    def test_a_login_round_trip(self):
        anonymous = self.fetch("/secret")
        self.assertEqual(anonymous.code, 302)
        self.assertEqual(anonymous.headers["Location"], "/login?next=%2Fsecret")
        login = self.fetch(
            "/login",
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body="user=ada&next=/secret",
        )
        cookie = login.headers["Set-Cookie"].split(";")[0]
        self.assertEqual(self.fetch("/secret", headers={"Cookie": cookie}).text, "hello ada")
        tampered = cookie.replace("|YWRh|", "|ZXZl|")
        self.assertEqual(self.fetch("/secret", headers={"Cookie": tampered}).code, 302)

    def test_the_format_is_the_one_the_rust_sdk_signs(self):
        # guest-sdk/src/cookie.rs pins the same bytes.
        signer = security.Signer({1: "the first secret, long enough"})
        signed = signer.sign("user", "ada", now=1_800_000_000)
        self.assertEqual(signed, "2|1|1800000000|YWRh|cCnG9Clm8oLl96ZP6EeN-pTNYcViunCRgXK86_16EEM")
        self.assertEqual(signer.verify("user", signed, now=1_800_000_000), b"ada")
        self.assertIsNone(signer.verify("other", signed, now=1_800_000_000))
        self.assertIsNone(signer.verify("user", signed, now=1_800_000_000 + 32 * 86_400))


class Xsrf(AsyncHTTPTestCase):
    def get_app(self):
        return app(xsrf_cookies=True)

    def test_a_post_needs_the_token_of_its_cookie(self):
        page = self.fetch("/form")
        cookie = page.headers["Set-Cookie"].split(";")[0]
        token = page.text.split('value="')[1].split('"')[0]
        form = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
        self.assertEqual(self.fetch("/form", method="POST", headers=form, body="_xsrf=" + token).text, "posted")
        self.assertEqual(self.fetch("/form", method="POST", headers=form, body="a=1").code, 403)
        other = security.mask_token(security.new_token())
        self.assertEqual(self.fetch("/form", method="POST", headers=form, body="_xsrf=" + other).code, 403)


if __name__ == "__main__":
    unittest.main()
