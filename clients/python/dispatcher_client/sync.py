"""The blocking client: :class:`AsyncClient`'s methods, each run to completion on a private loop.

Nothing is written twice: every method of :class:`Client` is :func:`blocking` applied to the
coroutine method of the same name, which keeps its signature, types and docstring (for mypy and
for ``help()``). A method added to :class:`AsyncClient` needs one line here; a test fails when
one is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import weakref
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

from dispatcher_client.aio import DEFAULT_URL, AsyncClient

__all__ = ["Client", "blocking"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class _LoopThread:
    """A private event loop running in a daemon thread; coroutines are submitted to it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="dispatcher-client", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result (or exception)."""
        if self.loop.is_closed() or not self.thread.is_alive():
            coro.close()
            raise RuntimeError("the client is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def stop(self) -> None:
        """Stop the loop and its thread, then close the loop (idempotent)."""
        if self.loop.is_closed():
            return
        if threading.current_thread() is self.thread:
            self.loop.stop()
            return
        if self.thread.is_alive():
            with contextlib.suppress(Exception):
                done = asyncio.run_coroutine_threadsafe(
                    self.loop.shutdown_default_executor(), self.loop
                )
                done.result(5)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


def blocking(
    method: Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[Client, P], R]:
    """A :class:`Client` method that runs the :class:`AsyncClient` coroutine method ``method``
    on the client's loop and returns its result: same parameters, same docstring."""

    @functools.wraps(method)
    def call(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._runner.run(method(self._async, *args, **kwargs))

    call.__qualname__ = f"Client.{method.__name__}"
    return call


class Client:
    """Synchronous client with the same methods as :class:`AsyncClient`.

    It runs an :class:`AsyncClient` on a private event loop in a background thread, so it works
    from any thread, including one whose own event loop is running. It is thread-safe. Close it
    with :meth:`close` or use it as a context manager.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
    ) -> None:
        self._async = AsyncClient(
            url, token, timeout=timeout, retries=retries, backoff=backoff, max_backoff=max_backoff
        )
        self._runner = _LoopThread()
        # A client dropped without close() still stops its thread.
        self._finalizer = weakref.finalize(self, self._runner.stop)

    @property
    def base_url(self) -> str:
        """The server's base URL."""
        return self._async.base_url

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close connections and stop the background loop. Calling it twice is harmless."""
        if not self._finalizer.alive:
            return
        with contextlib.suppress(RuntimeError):
            self._runner.run(self._async.close())
        self._finalizer()

    request = blocking(AsyncClient.request)

    # -- events ---------------------------------------------------------------------------------
    publish = blocking(AsyncClient.publish)
    publish_batch = blocking(AsyncClient.publish_batch)
    list_events = blocking(AsyncClient.list_events)
    get_event = blocking(AsyncClient.get_event)

    # -- webhooks -------------------------------------------------------------------------------
    list_webhooks = blocking(AsyncClient.list_webhooks)
    get_webhook = blocking(AsyncClient.get_webhook)
    create_webhook = blocking(AsyncClient.create_webhook)
    update_webhook = blocking(AsyncClient.update_webhook)
    delete_webhook = blocking(AsyncClient.delete_webhook)
    enable_webhook = blocking(AsyncClient.enable_webhook)
    disable_webhook = blocking(AsyncClient.disable_webhook)
    get_secret = blocking(AsyncClient.get_secret)
    rotate_secret = blocking(AsyncClient.rotate_secret)
    ping = blocking(AsyncClient.ping)
    send_test = blocking(AsyncClient.send_test)
    replay = blocking(AsyncClient.replay)

    # -- deliveries -----------------------------------------------------------------------------
    list_deliveries = blocking(AsyncClient.list_deliveries)
    get_delivery = blocking(AsyncClient.get_delivery)
    retry_delivery = blocking(AsyncClient.retry_delivery)
    cancel_delivery = blocking(AsyncClient.cancel_delivery)

    # -- event types ----------------------------------------------------------------------------
    list_event_types = blocking(AsyncClient.list_event_types)
    get_event_type = blocking(AsyncClient.get_event_type)
    create_event_type = blocking(AsyncClient.create_event_type)
    update_event_type = blocking(AsyncClient.update_event_type)
    delete_event_type = blocking(AsyncClient.delete_event_type)
    catalogue = blocking(AsyncClient.catalogue)

    # -- tenants --------------------------------------------------------------------------------
    create_tenant = blocking(AsyncClient.create_tenant)
    list_tenants = blocking(AsyncClient.list_tenants)
    get_tenant = blocking(AsyncClient.get_tenant)
    update_tenant = blocking(AsyncClient.update_tenant)
    delete_tenant = blocking(AsyncClient.delete_tenant)
    create_tenant_token = blocking(AsyncClient.create_tenant_token)
    list_tenant_tokens = blocking(AsyncClient.list_tenant_tokens)
    revoke_tenant_token = blocking(AsyncClient.revoke_tenant_token)
    portal_link = blocking(AsyncClient.portal_link)
