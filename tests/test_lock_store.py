"""The shared Redis lock store: tickets are unique across processes (bot/storage/lock_store.py).

Two processes issue 200 tickets each for one conversation at once, as two Rasa servers do
when a patient's messages reach both. With Rasa's own read-then-write Redis lock store the
two processes get the same ticket numbers; every change here is one compare-and-set, so all
400 tickets must be different.
"""
from __future__ import annotations

import multiprocessing

from bot.config import load_settings

TICKETS_EACH = 200


def _issue_all(env: dict, start, out) -> None:
    import os

    os.environ.update(env)
    from bot import config
    from bot.storage.lock_store import SettingsRedisLockStore

    config.reset_cache()
    store = SettingsRedisLockStore()
    start.wait()
    out.put([store.issue_ticket("sms-lock-test") for _ in range(TICKETS_EACH)])


def test_two_processes_never_get_the_same_ticket(settings_env, redis_sync, prefix):
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    workers = [ctx.Process(target=_issue_all, args=(dict(settings_env), start, out)) for _ in range(2)]
    for w in workers:
        w.start()
    start.set()
    first, second = out.get(timeout=120), out.get(timeout=120)
    for w in workers:
        w.join(timeout=30)
    assert len(set(first) | set(second)) == 2 * TICKETS_EACH
    assert sorted(first + second) == list(range(2 * TICKETS_EACH))


def test_cleanup_removes_the_lock_once_nobody_waits(settings_env, redis_sync, prefix):
    from bot.storage.lock_store import SettingsRedisLockStore

    load_settings()
    store = SettingsRedisLockStore()
    a = store.issue_ticket("sms-x")
    b = store.issue_ticket("sms-x")
    store.cleanup("sms-x", a)
    assert store.get_lock("sms-x").last_issued == b  # the second one still waits
    store.cleanup("sms-x", b)
    assert store.get_lock("sms-x") is None and not redis_sync.exists(f"{prefix}lock:sms-x")


def test_a_message_costs_two_writes_when_uncontended_and_a_stale_guess_is_corrected(settings_env, redis_sync,
                                                                                      prefix):
    """Issue and cleanup are one script call each; if another server changed the lock since this
    store wrote it, the script returns the stored lock and the change is made on that."""
    from bot.storage.lock_store import SettingsRedisLockStore

    load_settings()
    store, other = SettingsRedisLockStore(), SettingsRedisLockStore()
    calls = []
    script, get = store._compare_and_set, store.red.get
    store._compare_and_set = lambda **kw: calls.append("cas") or script(**kw)
    store.red.get = lambda *a, **kw: calls.append("get") or get(*a, **kw)
    ticket = store.issue_ticket("sms-y")
    store.cleanup("sms-y", ticket)
    assert calls == ["cas", "cas"] and not redis_sync.exists(f"{prefix}lock:sms-y")

    calls.clear()
    mine = store.issue_ticket("sms-z")
    theirs = other.issue_ticket("sms-z")  # this store's remembered lock is now stale
    store.cleanup("sms-z", mine)
    assert calls == ["cas", "cas", "cas"]  # the stale guess is refused once, then applied to the real lock
    lock = other.get_lock("sms-z")
    assert [t.number for t in lock.tickets] == [theirs] and theirs == mine + 1
    other.cleanup("sms-z", theirs)
    assert not redis_sync.exists(f"{prefix}lock:sms-z")
