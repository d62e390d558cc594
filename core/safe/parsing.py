"""One lock around Python's parser: ``ast.parse`` is not thread-safe on CPython 3.11.

The C code that turns a parse tree into ``ast`` objects counts its recursion depth in state
shared by the whole interpreter. When the garbage collector runs a Python finalizer in the
middle of it, another thread may take the GIL and parse too; the count no longer balances
and one of the two raises ``SystemError: AST constructor recursion depth mismatch``. The
server evaluates many users' expressions in parallel threads, so every parse in the lab
(the expression engine, ``inspect.getsource`` for a class, ``torch.jit.script``) holds
``PARSE_LOCK``. It is reentrant, so a finalizer that parses on the same thread cannot deadlock.
"""
from __future__ import annotations

import ast
import threading

PARSE_LOCK = threading.RLock()


def parse(source: str, mode: str = "exec") -> ast.AST:
    """``ast.parse(source, mode=mode)`` under ``PARSE_LOCK``."""
    with PARSE_LOCK:
        return ast.parse(source, mode=mode)
