"""One helper re-homes what a facade package re-exports; it leaves what others define."""

import pickle

from attention_book import _facade, attention, models


def test_adopt_rehomes_only_what_the_package_defines():
    def own():
        pass

    def elsewhere():
        pass

    own.__module__ = "pkg.sub"
    elsewhere.__module__ = "other.module"
    namespace = {"__name__": "pkg", "own": own, "elsewhere": elsewhere, "TABLE": {"a": 1}}
    _facade.adopt(namespace, ["own", "elsewhere", "TABLE"])
    assert own.__module__ == "pkg"
    assert elsewhere.__module__ == "other.module"
    assert namespace["TABLE"] == {"a": 1}


def test_the_facades_are_the_home_readers_import_from():
    assert attention.MultiHeadAttention.__module__ == "attention_book.attention"
    assert models.transformer.TransformerLM.__module__ == "attention_book.models.transformer"
    # sinusoidal_positions is re-exported by models.transformer but lives in positions
    assert models.transformer.sinusoidal_positions.__module__ == "attention_book.positions"
    layer = attention.MultiHeadAttention(8, 2)
    assert type(pickle.loads(pickle.dumps(layer))) is attention.MultiHeadAttention
