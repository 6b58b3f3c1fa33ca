"""What a PromQL expression reads: metric names, label names, functions. Enough of the
grammar for the expressions in packaging/grafana/ and packaging/prometheus/; promtool
checks their syntax, this finds what they refer to."""
import re

FUNCTIONS = {
    # aggregations
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
    "quantile",
    # functions (Prometheus 2.42)
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "day_of_month",
    "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp", "floor", "histogram_quantile",
    "holt_winters", "hour", "idelta", "increase", "irate", "label_join", "label_replace", "ln", "log2", "log10",
    "minute", "month", "predict_linear", "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt",
    "time", "timestamp", "vector", "year", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
    "count_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time", "last_over_time",
    "present_over_time",
}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
            "group_right", "inf", "nan"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{([^}]*)\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_VARIABLE = re.compile(r"\$\{?\w+\}?")
_NUMBER = re.compile(r"(?<![\w:])(?:\d+\.?\d*(?:e[+-]?\d+)?|\.\d+)(?:ms|s|m|h|d|w|y)?(?![\w:])", re.I)
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")


class Refs:
    def __init__(self):
        self.metrics = set()
        self.labels = set()
        self.functions = set()


def refs(expr):
    """The metric names, label names and functions expr mentions (ValueError on a name
    that is neither a known function nor a metric)."""
    r = Refs()
    s = _STRING.sub('""', expr)
    for m in _MATCHERS.finditer(s):
        for lm in _MATCHER_LABEL.finditer(m.group(1)):
            if lm.group(1) != "__name__":
                r.labels.add(lm.group(1))
    s = _MATCHERS.sub(" ", s)
    s = _RANGE.sub(" ", s)
    for m in _LABEL_LIST.finditer(s):
        r.labels.update(x.strip() for x in m.group(2).split(",") if x.strip())
    s = _LABEL_LIST.sub(" ", s)
    s = _VARIABLE.sub(" ", s)
    s = _NUMBER.sub(" ", s)
    for m in _IDENT.finditer(s):
        name = m.group(0)
        rest = s[m.end():].lstrip()
        if name.lower() in KEYWORDS:
            continue
        if rest.startswith("("):
            if name not in FUNCTIONS:
                raise ValueError(f"unknown PromQL function {name!r} in: {expr}")
            r.functions.add(name)
        else:
            r.metrics.add(name)
    return r


def grafana_to_promql(expr):
    """A Grafana query with its template variables replaced by values Prometheus accepts."""
    s = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
    return _VARIABLE.sub(".*", s)
