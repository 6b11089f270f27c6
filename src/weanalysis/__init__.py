"""weanalysis: the exact user portrait (用户画像) of an app's own visit records.

Data flow (one sub-package per arrow)::

    records (read + validate) -> enrich -> store -> portrait -> wechat (API dialect) / cli
"""

__version__ = "0.1.0"
