"""The bare replay of a request's own SQL (bench/warm_latency.py) finds and swaps ids wherever the
handler put them: ``UUID`` parameters, ids written in text with or without dashes, lists, dicts and
JSON parameters."""

from __future__ import annotations

import uuid

from psycopg.types.json import Jsonb

from bench.warm_latency import _swap, _uuids_in

OLD, NEW, OTHER = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def test_uuids_are_found_in_every_kind_of_parameter_in_order():
    params = (OLD, f'{{"sub": "{OTHER}"}}', [OLD], {"a": Jsonb({"b": str(OTHER)})}, 7, None)
    assert _uuids_in(params) == [OLD, OTHER, OLD, OTHER]


def test_swap_replaces_an_id_in_every_form_and_keeps_the_rest():
    params = (OLD, f"txn_sandbox_{OLD.hex}", f"/checkouts/{OLD}/complete", [OLD, OTHER], {"k": OLD},
              Jsonb({"id": str(OLD), "n": 1}), 20, None)
    swapped = _swap(params, {OLD: NEW})
    assert swapped[:5] == (NEW, f"txn_sandbox_{NEW.hex}", f"/checkouts/{NEW}/complete", [NEW, OTHER], {"k": NEW})
    assert isinstance(swapped[5], Jsonb) and swapped[5].obj == {"id": str(NEW), "n": 1}
    assert swapped[6:] == (20, None)


def test_swap_leaves_ids_it_was_not_given():
    assert _swap([OTHER, str(OTHER), OTHER.hex], {OLD: NEW}) == [OTHER, str(OTHER), OTHER.hex]
