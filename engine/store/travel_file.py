"""Travel-matrix files (JSON): minutes from each node to each area cell, the
road times a planner brings or `o2o network travel-matrix` builds once from
a road table service. The format is in docs/travel.md; a bad file gets an
error naming the file, the field and the reason."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
import numpy as np
from msgspec import Meta, Struct

from domain.errors import InvalidInput
from domain.network import Id
from engine.travel import Grid, TravelMatrix

Minutes = Annotated[float, Meta(ge=0)]


class TravelMatrixFile(Struct, frozen=True, forbid_unknown_fields=True):
    grid: Grid
    nodes: Annotated[list[Id], Meta(min_length=1)]
    minutes: list[list[Minutes | None]]  # per node, per cell (row-major: cell = row * cols + col); null: no time
    network: str = ""  # the network it was made for (informative)
    source: str = ""  # how it was made (a table service's URL, "synthetic ...", a planner's note)
    version: int = 1


class TravelFileError(InvalidInput):
    def __init__(self, path: Path | str, field: str, reason: str):
        super().__init__(field, reason)
        self.path = str(path)

    def __str__(self) -> str:
        return f"{self.path}: {self.field}: {self.reason}"


_DECODE = msgspec.json.Decoder(TravelMatrixFile)
_ENCODE = msgspec.json.Encoder()


def load_travel_matrix(path: Path | str) -> TravelMatrix:
    """Reads and checks a matrix file; raises TravelFileError naming the field."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TravelFileError(path, "$", f"cannot read the file ({e.strerror})") from None
    try:
        f = _DECODE.decode(data)
    except msgspec.ValidationError as e:
        reason, _, field = str(e).partition(" - at ")
        raise TravelFileError(path, field.strip("`") or "$", reason) from None
    except msgspec.DecodeError as e:
        raise TravelFileError(path, "$", f"not valid JSON: {e}") from None
    if len(set(f.nodes)) != len(f.nodes):
        dup = next(n for n in f.nodes if f.nodes.count(n) > 1)
        raise TravelFileError(path, "$.nodes", f"node {dup} is named twice")
    if len(f.minutes) != len(f.nodes):
        raise TravelFileError(path, "$.minutes", f"one row per node: {len(f.nodes)} nodes, {len(f.minutes)} rows")
    for i, row in enumerate(f.minutes):
        if len(row) != f.grid.size:
            raise TravelFileError(path, f"$.minutes[{i}]",
                                  f"one value per cell: {f.grid.rows} x {f.grid.cols} = {f.grid.size}, not {len(row)}")
    minutes = np.array([[np.nan if m is None else m for m in row] for row in f.minutes], dtype=float)
    return TravelMatrix(f.grid, list(f.nodes), minutes.reshape(len(f.nodes), f.grid.size))


def dump_travel_matrix(matrix: TravelMatrix, path: Path | str, network: str = "", source: str = "") -> None:
    """Writes a matrix file; minutes rounded to 0.01, unknown ones as null."""
    table = matrix.minutes()
    rows = [[None if np.isnan(m) else m for m in np.round(row, 2).tolist()] for row in table]
    f = TravelMatrixFile(grid=matrix.grid, nodes=matrix.node_ids, minutes=rows, network=network, source=source)
    Path(path).write_bytes(_ENCODE.encode(f))
