"""Key functions compiled once, at decoration time, from the method's signature.

>>> def get(self, key, default=None): ...
>>> kf = compile_key(get, ("key",))
>>> kf.function(None, "a"), kf.function(None, key="a"), kf.indices
(('a',), ('a',), (1,))

As in Odoo, ``lambda <signature>: (<exprs>,)`` resolves defaults, keywords and positional
arguments exactly as a real call would. The expressions see the parameters and the builtins,
never the module's globals, and a bad expression fails here, naming the method and the expression.
"""
from __future__ import annotations

import builtins
from collections import namedtuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (issue #21: import cost)
if TYPE_CHECKING:
    import ast
    import inspect
    from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Set, Tuple
# typing is never imported at run time; ast and inspect are imported when a key is compiled
# (at decoration), not with ormcache (issue #21)

__all__ = ["KeyFunction", "compile_key", "context_of", "context_part"]

_BUILTINS = frozenset(dir(builtins))
# the eval'd lambda sees only these names (plus its parameters)
_CTX = "_ormcache_ctx"
_DEFAULT = "_ormcache_default_"
_CTX_VAR = "_ormcache_context"


if TYPE_CHECKING:
    class KeyFunction(NamedTuple):
        """How to build the variable part of a key from a call's arguments."""

        #: ``function(*args, **kwargs) -> tuple``: the key's expressions, evaluated as by a real call.
        function: Callable[..., Tuple[Any, ...]]
        #: positions of the arguments when every expression is a plain positional parameter name
        #: (the fast path: the key is taken straight from the positional arguments), else None.
        indices: Optional[Tuple[int, ...]]
        #: a positional call with ``min_args <= len(args) <= max_args`` and no keywords binds
        #: exactly like the signature (max_args is -1 when there is a ``*args``).
        min_args: int
        max_args: int
        #: ``ormcache_context``: the context keys whose values end the key, as one nested tuple
        #: (``context_part``), else None.
        context_keys: Optional[Tuple[str, ...]] = None
        #: where the context comes from on the fast path: the position of the ``context`` parameter
        #: (given positionally), or -1: ``context_of`` the first argument (the owner).
        context_index: int = -1
        #: when every expression is a parameter, an attribute chain on one (``self.env.uid``) or a
        #: call of a builtin of ``PLAN_BUILTINS`` on either (``frozenset(ids)``), and ``indices`` is
        #: None: one ``(position, default, attributes, builtin or None)`` per expression, which the
        #: compiled hit path evaluates without the lambda's frame for a positional call of
        #: ``min_args..max_args`` arguments (``default`` stands for a parameter not given), else None.
        plan: Optional[Tuple[Tuple[int, Any, Tuple[str, ...], Any], ...]] = None
else:  # the same tuple, without importing typing
    KeyFunction = namedtuple("KeyFunction", ["function", "indices", "min_args", "max_args", "context_keys",
                                             "context_index", "plan"], defaults=(None, -1, None))
    KeyFunction.__doc__ = "How to build the variable part of a key from a call's arguments."


#: the builtins a key plan calls directly (pure, one argument): the lambda would call the same
PLAN_BUILTINS = {name: getattr(builtins, name) for name in ("frozenset", "tuple", "len", "str", "int", "bool")}


def context_part(context: Any, keys: Tuple[str, ...]) -> Tuple[Any, ...]:
    """The context's share of a key: ``(context.get(k) for k in keys)`` as a tuple."""
    return tuple([context.get(key) for key in keys])


def context_of(owner: Any) -> Any:
    """The context of an owner without a ``context`` parameter: ``env.context`` or ``_context``."""
    env = getattr(owner, "env", None)
    context = getattr(env, "context", None) if env is not None else None
    if context is None:
        context = getattr(owner, "_context", None)
    return context if context is not None else {}


def _lambda_parameters(sig: inspect.Signature, namespace: Dict[str, Any]) -> str:
    """The parameter list of ``sig`` as source, defaults referenced by name (any object works)."""
    from inspect import Parameter as _P

    parts = []
    seen_kwonly = seen_posonly = False
    for index, param in enumerate(sig.parameters.values()):
        if param.kind is _P.POSITIONAL_ONLY:
            seen_posonly = True
        elif seen_posonly:
            parts.append("/")
            seen_posonly = False
        if param.kind is _P.KEYWORD_ONLY and not seen_kwonly:
            parts.append("*")
        if param.kind in (_P.VAR_POSITIONAL, _P.KEYWORD_ONLY):
            seen_kwonly = True
        text = param.name
        if param.kind is _P.VAR_POSITIONAL:
            text = "*" + text
        elif param.kind is _P.VAR_KEYWORD:
            text = "**" + text
        if param.default is not _P.empty:
            namespace[f"{_DEFAULT}{index}"] = param.default
            text += f"={_DEFAULT}{index}"
        parts.append(text)
    if seen_posonly:
        parts.append("/")
    return ", ".join(parts)


def _free_names(tree: ast.AST) -> Set[Any]:
    """Names an expression reads that it does not bind itself (comprehensions, lambdas)."""
    import ast

    read: Set[str] = set()
    bound: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return read - bound


def _check_expression(where: str, expr: Any, names: Set[Any]) -> None:
    import ast

    if not isinstance(expr, str):
        raise TypeError(f"{where}: key expression {expr!r} must be a string")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"{where}: invalid key expression {expr!r}: {exc.msg}") from None
    unknown = sorted(_free_names(tree) - names - _BUILTINS)
    if unknown:
        raise ValueError(
            f"{where}: key expression {expr!r} uses {', '.join(unknown)}, which is neither a "
            f"parameter nor a builtin (key expressions do not see module globals)"
        )


def compile_key(
    func: Callable[..., Any],
    exprs: Sequence[str],
    *,
    context_keys: Optional[Sequence[str]] = None,
    where: Optional[str] = None,
) -> KeyFunction:
    """Compile ``exprs`` (and, for ormcache_context, the context keys) over ``func``'s signature."""
    import inspect

    where = where or f"ormcache on {getattr(func, '__qualname__', func)!r}"
    sig = inspect.signature(func)
    params = sig.parameters
    names = set(params)
    for expr in exprs:
        _check_expression(where, expr, names)
    namespace: Dict[str, Any] = {"__builtins__": builtins, _CTX: context_of}
    values = [f"({expr.strip()})" for expr in exprs]
    if context_keys is not None:
        if isinstance(context_keys, str):
            raise TypeError(f"{where}: keys must be a sequence of names, not a string")
        context_keys = tuple(context_keys)
        if "context" in params:
            context = "(context or {})"
        elif params:
            context = f"{_CTX}({next(iter(params))})"
        else:
            raise ValueError(f"{where}: ormcache_context needs a 'context' parameter or an owner")
        # one nested tuple, built without a generator: ((c := ctx).get('lang'), c.get('tz'))
        gets = [f"{_CTX_VAR}.get({key!r})" for key in context_keys]
        if gets:
            gets[0] = f"({_CTX_VAR} := {context}).get({context_keys[0]!r})"
        values.append("(" + "".join(get + ", " for get in gets) + ")")
    code = f"lambda {_lambda_parameters(sig, namespace)}: ({''.join(v + ', ' for v in values)})"
    try:
        function = eval(code, namespace)  # noqa: S307 - source built from the signature, checked above
    except SyntaxError as exc:  # e.g. an expression that is valid alone but not inside the tuple
        raise ValueError(f"{where}: invalid key expressions {tuple(exprs)!r}: {exc.msg}") from None
    function.__qualname__ = function.__name__ = f"{getattr(func, '__name__', 'key')}_key"
    indices, min_args, max_args, context_index = _fast_path(params, exprs, context_keys)
    plan = _plan(params, exprs) if indices is None and context_keys is None else None
    return KeyFunction(function, indices, min_args, max_args, context_keys, context_index, plan)


def _plan(params: Mapping[str, inspect.Parameter], exprs: Sequence[str]) -> Optional[Tuple[Tuple[int, Any, Tuple[str, ...], Any], ...]]:
    """``KeyFunction.plan`` of ``exprs`` (already checked), or None when one does not fit."""
    import ast
    from inspect import Parameter as _P

    positional = [p for p in params.values() if p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)]
    position = {p.name: i for i, p in enumerate(positional)}
    steps = []
    for expr in exprs:
        node = ast.parse(expr.strip(), mode="eval").body
        builtin = None
        if isinstance(node, ast.Call):
            if (not isinstance(node.func, ast.Name) or node.func.id in params
                    or node.func.id not in PLAN_BUILTINS or len(node.args) != 1 or node.keywords
                    or isinstance(node.args[0], ast.Starred)):
                return None
            builtin = PLAN_BUILTINS[node.func.id]
            node = node.args[0]
        attributes: List[str] = []
        while isinstance(node, ast.Attribute):
            attributes.insert(0, node.attr)
            node = node.value
        if not isinstance(node, ast.Name) or node.id not in position:
            return None
        param = positional[position[node.id]]
        steps.append((position[node.id], param.default, tuple(attributes), builtin))
    return tuple(steps)


def _fast_path(
    params: Mapping[str, inspect.Parameter], exprs: Sequence[str], context_keys: Optional[Tuple[str, ...]]
) -> Tuple[Optional[Tuple[int, ...]], int, int, int]:
    """-> (indices, min_args, max_args, context_index): see ``KeyFunction``."""
    from inspect import Parameter as _P

    positional = [p for p in params.values() if p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)]
    position = {p.name: i for i, p in enumerate(positional)}
    min_args = sum(1 for p in positional if p.default is _P.empty)
    varargs = any(p.kind is _P.VAR_POSITIONAL for p in params.values())
    max_args = -1 if varargs else len(positional)
    required_kwonly = any(p.kind is _P.KEYWORD_ONLY and p.default is _P.empty for p in params.values())
    plain = [e.strip() for e in exprs]
    context_index = -1
    needed = [i + 1 for i in (position.get(e, 0) for e in plain)]
    if context_keys is not None:
        if "context" in params:  # a keyword-only `context` (-2) takes the key function
            context_index = position.get("context", -2)
        elif not positional:  # the owner is *args or keyword-only: the key function too
            context_index = -2
        needed.append(max(context_index, 0) + 1)  # the context, or the owner, given positionally
    if required_kwonly or context_index < -1 or not all(e in position for e in plain):
        return None, min_args, max_args, context_index
    indices = tuple(position[e] for e in plain)
    # every indexed argument must be given positionally (and the context or its owner)
    min_args = max([min_args, *needed])
    return indices, min_args, max_args, context_index
