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

    def test_a_traceback_reaches_the_client_only_in_debug_mode(self):
        class Broken(RequestHandler):
            def get(self):
                raise ValueError("the secret is 42")

        quiet = Application([(r"/", Broken)])
        loud = Application([(r"/", Broken)], serve_traceback=True)
        debug = Application([(r"/", Broken)], debug=True)
        explicit = Application([(r"/", Broken)], debug=True, serve_traceback=False)
        for application, shown in ((quiet, False), (loud, True), (debug, True), (explicit, False)):
            self._app = application
            response = self.fetch("/")
            self.assertEqual(response.code, 500)
            self.assertEqual("the secret is 42" in response.text, shown, response.text)

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


class Hostile(AsyncHTTPTestCase):
    """What a hostile client sends gets a 4xx, never someone else's page."""

    def get_app(self):
        class Anything(RequestHandler):
            def get(self, path):
                if path == "percent":
                    raise HTTPError(404, "no 100% match")
                self.set_cookie("seen", "1")
                self.set_cookie("seen", "2")
                if path == "fail":
                    raise HTTPError(409)
                self.redirect("/login")

            def post(self, path):
                self.write({"fields": self.get_body_arguments("a")})

        return Application([(r"/(.*)", Anything)])

    def test_a_redirect_is_sent_as_given_not_joined_to_the_request(self):
        response = self.fetch("//evil.example/x")
        self.assertEqual(response.headers["Location"], "/login")

    def test_a_literal_percent_in_an_error_message_is_still_that_error(self):
        self.assertEqual(self.fetch("/percent").code, 404)

    def test_cookies_outlive_an_error_page_and_a_second_set_replaces_the_first(self):
        response = self.fetch("/fail")
        self.assertEqual(response.code, 409)
        self.assertEqual(response.headers.get_list("Set-Cookie"), ["seen=2; Path=/"])

    def test_a_malformed_or_oversized_multipart_body_is_a_400(self):
        headers = {"Content-Type": "multipart/form-data; boundary=xyz"}
        self.assertEqual(self.fetch("/x", method="POST", headers=headers, body=b"--xyz\r\nno end").code, 400)
        many = b"".join(b'--xyz\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n' for _ in range(1001))
        self.assertEqual(self.fetch("/x", method="POST", headers=headers, body=many + b"--xyz--\r\n").code, 400)
        one = b'--xyz\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--xyz--\r\n'
        self.assertEqual(json.loads(self.fetch("/x", method="POST", headers=headers, body=one).body), {"fields": ["1"]})


class Templates(unittest.TestCase):
    def test_autoescape_belongs_to_the_file_that_sets_it(self):
        from squall.template import Loader

        loader = Loader.__new__(Loader)
        loader.root, loader.autoescape, loader.templates = "<memory>", "xhtml_escape", {}
        loader.sources = {
            "base.html": b"{% autoescape None %}{{ raw }}|{% block body %}{% end %}",
            "page.html": b'{% extends "base.html" %}{% block body %}{{ raw }}{% end %}',
            "apply.html": b"{% apply squeeze %}  a   b  {% end %}",
        }
        out = loader.load("page.html").generate(raw="<b>")
        self.assertEqual(out, b"<b>|&lt;b&gt;")
        self.assertEqual(loader.load("apply.html").generate(), b"a b")


class KeyVersions(unittest.TestCase):
    def test_every_version_verifies_and_key_version_signs(self):
        settings = {"cookie_secret": {1: "the first secret, long enough", 2: "the second secret, long enough"}, "key_version": 1}
        signer = security.Signer.from_settings(settings)
        signed = signer.sign("user", "ada")
        self.assertTrue(signed.startswith("2|1|"))
        newer = security.Signer({2: "the second secret, long enough"}).sign("user", "bob")
        self.assertEqual(signer.verify("user", newer), b"bob")
