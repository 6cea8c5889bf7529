"""The stall watchdog: fires once with one error line when beats stop, stays quiet while they come."""
import time

from daa.training.watchdog import StallWatchdog, stall_limit_s


def test_limit_is_twice_the_timeout_at_least_plus_30s():
    assert stall_limit_s(30) == 3600
    assert stall_limit_s(0.25) == 45


def test_fires_when_beats_stop(capsys):
    codes = []
    dog = StallWatchdog(0.3, rank=1, timeout_minutes=0.001, poll_s=0.02, exit_fn=codes.append).start()
    t0 = time.monotonic()
    while not codes and time.monotonic() - t0 < 5:
        time.sleep(0.02)
    dog.stop()
    assert codes == [3]
    assert 0.3 <= time.monotonic() - t0 < 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: rank 1: no training progress for ")
    assert "run.dist_timeout_minutes=0.001" in err[0]


def test_quiet_while_beating():
    codes = []
    dog = StallWatchdog(0.3, rank=0, timeout_minutes=0.001, poll_s=0.02, exit_fn=codes.append).start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.0:  # > 3 limits in total, never one without a beat
        dog.beat()
        time.sleep(0.05)
    dog.stop()
    assert codes == []
    assert not dog._thread.is_alive()
