"""``checks.ch7_sinks``: each checker accepts the reference and rejects wrong answers."""

import math

import torch

from attention_book import checks
from attention_book.modern import SinkCache, softmax_with_sink

# --- check_sink_cache_keep ---------------------------------------------------------------


def _keep(t, num_sinks, window):
    return list(range(min(t, num_sinks))) + list(range(max(num_sinks, t - window), t))


def _keep_by_cache(t, num_sinks, window):  # the package's cache, fed t one-token keys
    cache = SinkCache(num_sinks, window)
    for _ in range(t):
        cache.update(torch.zeros(1, 1), torch.zeros(1, 1))
    return cache.positions


def test_check_sink_cache_keep_accepts(capsys):
    assert checks.check_sink_cache_keep(_keep) is True
    assert checks.check_sink_cache_keep(_keep_by_cache) is True
    assert checks.check_sink_cache_keep(lambda *a: torch.tensor(_keep(*a))) is True
    assert "passes all 7 checks" in capsys.readouterr().out


def test_check_sink_cache_keep_rejects(capsys):
    for wrong, named in [
        # rolling only: the sinks are evicted like any token
        (lambda t, s, w: list(range(max(0, t - s - w), t)), "one token too many"),
        # the window overlaps the sinks early on: tokens counted twice
        (lambda t, s, w: list(range(min(t, s))) + list(range(max(0, t - w), t)),
         "every token once"),
        # off by one: a window of w - 1
        (lambda t, s, w: list(range(min(t, s))) + list(range(max(s, t - w + 1), t)),
         "exactly full"),
        # never evicts: the first s + w tokens
        (lambda t, s, w: list(range(min(t, s + w))), "one token too many"),
        # the window first, then the sinks
        (lambda t, s, w: list(range(max(s, t - w), t)) + list(range(min(t, s))),
         "every token once"),
        # evicts the newest token instead of the oldest
        (lambda t, s, w: list(range(min(t, s + w - 1))) + ([t - 1] if t > s + w - 1 else []),
         "one token too many"),
        (lambda t, s, w: None, "return a list of ints"),
    ]:  # fmt: skip
        assert checks.check_sink_cache_keep(wrong) is False
        assert named in capsys.readouterr().out


# --- check_softmax_with_sink -------------------------------------------------------------


def _sink_softmax(scores, sink_logit):
    sink = torch.as_tensor(sink_logit, dtype=scores.dtype).expand(*scores.shape[:-1], 1)
    return torch.softmax(torch.cat([scores, sink], dim=-1), dim=-1)[..., :-1]


def _no_shift(scores, sink_logit):  # exp of the raw logits: overflows near 1000
    e = scores.exp()
    return e / (torch.as_tensor(sink_logit, dtype=scores.dtype).exp() + e.sum(-1, keepdim=True))


def _shift_scores_only(scores, sink_logit):  # the max over the scores alone: NaN when masked
    m = scores.amax(-1, keepdim=True)
    e = (scores - m).exp()
    sink = (torch.as_tensor(sink_logit, dtype=scores.dtype) - m).exp()
    return e / (sink + e.sum(-1, keepdim=True))


def test_check_softmax_with_sink_accepts(capsys):
    assert checks.check_softmax_with_sink(_sink_softmax) is True
    assert checks.check_softmax_with_sink(softmax_with_sink) is True
    assert "passes all 6 checks" in capsys.readouterr().out


def test_check_softmax_with_sink_rejects(capsys):
    for wrong, named in [
        (lambda s, b: torch.softmax(s, -1), "sink logit 0"),  # forgets the sink
        (lambda s, b: torch.softmax(  # keeps the sink column
            torch.cat([s, torch.as_tensor(b, dtype=s.dtype).expand(*s.shape[:-1], 1)], -1), -1),
         "sink logit 0"),
        (lambda s, b: s.exp() / (b + s.exp().sum(-1, keepdim=True)), "sink logit 0"),  # no exp
        (lambda s, b: _sink_softmax(s, 0.0), "sink logit ln 3"),  # softmax plus one, always
        (lambda s, b: _sink_softmax(s, torch.as_tensor(b).mean()), "one sink logit per head"),
        (_no_shift, "overflow"),
        (_shift_scores_only, "fully masked row"),
        (lambda s, b: (_sink_softmax(s, b) / _sink_softmax(s, b).sum(-1, keepdim=True)),
         "sink logit 0"),  # renormalised: the ordinary softmax again
    ]:  # fmt: skip
        assert checks.check_softmax_with_sink(wrong) is False
        assert named in capsys.readouterr().out


def test_sink_checkers_reject_non_callables():
    for checker in (checks.check_sink_cache_keep, checks.check_softmax_with_sink):
        try:
            checker(math.pi)
        except TypeError as error:
            assert "fn must be a function" in str(error)
        else:
            raise AssertionError("a number is not a function")
