from uuid import uuid5

from hypothesis import given, strategies as st

from domain import ids


@given(st.text())
def test_named_ids_are_the_librarys_uuid5(name):
    made, library = ids.named(name), uuid5(ids._ROOT, name)
    assert made == library
    assert (str(made), hash(made), made.version, made.variant, made.is_safe) == (
        str(library), hash(library), library.version, library.variant, library.is_safe)


def test_an_order_named_without_digits_at_its_end_keeps_the_uuid5_of_its_channel_and_external_id():
    assert ids.order_id("web", "o-a") == uuid5(ids._ROOT, "order/web/o-a")
    assert ids.order_id("web", "o-\u0663") == uuid5(ids._ROOT, "order/web/o-\u0663")  # an Arabic-Indic 3: not a digit here


# a stem is what is left once the digits are taken off the end: it does not end in one
@given(st.text(max_size=30).filter(lambda s: not s or s[-1] not in "0123456789"),
       st.integers(0, 10 ** 15 - 1), st.integers(0, 10 ** 15 - 1))
def test_orders_with_one_stem_are_ordered_by_their_digits_as_the_store_sorts_their_ids(stem, a, b):
    x, y = ids.order_id("meituan", f"{stem}{a}"), ids.order_id("meituan", f"{stem}{b}")
    assert (x.version, x.variant) == (8, "specified in RFC 4122")
    assert (x == y) == (a == b)
    assert (ids.plain_hex(x) < ids.plain_hex(y)) == ((len(str(a)), a) < (len(str(b)), b))  # count, then value


@given(st.lists(st.tuples(st.sampled_from(["web", "we", "w", "eleme"]),
                          st.text(alphabet="ab:-0123456789", min_size=1, max_size=22)), unique=True, max_size=60))
def test_different_names_get_different_ids(names):
    """Leading zeros, a channel ending where a stem begins, more than 15
    digits (the stem takes the rest), names that end in no digit. Names as
    SubmitOrder lets them in: a channel has no '/', an external id is not
    empty (("web", "/") and ("web/", "") are one uuid5 name)."""
    assert len({ids.order_id(c, e) for c, e in names}) == len(names)


@given(st.uuids())
def test_an_ids_text_is_its_str(u):
    assert ids.text(u) == str(u)
    named = ids.named(str(u))
    assert ids.text(named) == str(named)
