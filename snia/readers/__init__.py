"""Readers of raw survey files; each turns its share of the input into ``Chunk``s of whole objects.

Every reader has the same small interface (``input_files``, ``weights``, ``atomic`` (one flag, or
one per input item), ``read(pieces)``, ``metadata_ids``, ``where_metadata``); ``reader_for`` picks
one by format name. Shared parts:
``work`` (how MPI ranks share the input: ``split_work``, ``Piece``), ``csv_file`` (byte ranges of
whole objects in a CSV file), ``snana`` (what SNANA's fields and "not known" values mean),
``alert_packets`` (LSST alert files as flat columns) and ``formats`` (the readers by format name,
folders as inputs). This file only names what the package offers.
"""

from snia.readers.formats import FORMATS, expand_inputs, reader_for
from snia.readers.lsst_alert import LsstAlertReader
from snia.readers.plasticc import PlasticcReader
from snia.readers.snana_fits import SnanaFitsReader
from snia.readers.snana_text import SnanaTextReader
from snia.readers.work import Piece, split_work

__all__ = ["FORMATS", "LsstAlertReader", "Piece", "PlasticcReader", "SnanaFitsReader", "SnanaTextReader",
           "expand_inputs", "reader_for", "split_work"]
