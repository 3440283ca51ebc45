"""Listeners: a subscription ends when its owner says so, a web app's subscriptions end with it,
and one failing listener does not silence the others."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from daemon.listeners import Listeners, subscription


def test_subscribe_returns_the_end_of_the_subscription() -> None:
    heard: list[str] = []
    news: Listeners[str] = Listeners("news")
    stop = news.subscribe(heard.append)
    news.emit("one")
    stop()
    stop()  # twice is harmless
    news.emit("two")
    assert heard == ["one"] and len(news) == 0


def test_a_failing_listener_is_logged_and_the_others_still_hear(caplog: pytest.LogCaptureFixture) -> None:
    heard: list[int] = []
    news: Listeners[int] = Listeners("stored")

    def broken(_: int) -> None:
        raise RuntimeError("boom")

    news.subscribe(broken)
    news.subscribe(heard.append)
    with caplog.at_level(logging.ERROR):
        news.emit(7)
    assert heard == [7]
    assert "a stored listener failed" in caplog.text


async def test_a_web_app_is_subscribed_while_it_runs_and_not_after() -> None:
    heard: list[int] = []
    news: Listeners[int] = Listeners("stored")
    web_app = web.Application()
    web_app.cleanup_ctx.append(subscription(news, heard.append))
    assert len(news) == 0  # not before it starts
    server = TestServer(web_app)
    await server.start_server()
    try:
        assert len(news) == 1
        news.emit(1)
    finally:
        await server.close()
    news.emit(2)
    assert heard == [1] and len(news) == 0
