from uuid import uuid5

from hypothesis import given, strategies as st

from domain import ids


@given(st.text())
def test_named_ids_are_the_librarys_uuid5(name):
    made, library = ids.named(name), uuid5(ids._ROOT, name)
    assert made == library
    assert (str(made), hash(made), made.version, made.variant, made.is_safe) == (
        str(library), hash(library), library.version, library.variant, library.is_safe)


def test_an_order_id_is_the_uuid5_of_its_channel_and_external_id():
    assert ids.order_id("web", "o-1") == uuid5(ids._ROOT, "order/web/o-1")


@given(st.uuids())
def test_an_ids_text_is_its_str(u):
    assert ids.text(u) == str(u)
    named = ids.named(str(u))
    assert ids.text(named) == str(named)
