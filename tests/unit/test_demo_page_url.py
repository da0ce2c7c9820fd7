"""The demo page's URL printed at start: where a browser on this machine reaches it."""

import pytest

from web.service import demo_page_url


@pytest.mark.parametrize(
    "host, url",
    [
        ("127.0.0.1", "http://127.0.0.1:8080/"),
        ("0.0.0.0", "http://127.0.0.1:8080/"),
        ("::", "http://[::1]:8080/"),
        ("::1", "http://[::1]:8080/"),
        ("chat.example.org", "http://chat.example.org:8080/"),
    ],
)
def test_the_demo_page_url_names_an_address_a_local_browser_reaches(host: str, url: str) -> None:
    assert demo_page_url(host, 8080) == url
