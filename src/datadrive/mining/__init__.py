"""Scenario mining: per-state features, event taggers, a query language, natural-language search.

This layer finds the moments that matter in the lake: it computes per-state
kinematics and map context, tags events (hard braking, cut-ins, near
misses, ...), evaluates composable queries over tracks, turns plain-English
descriptions into queries, writes RefAV submissions, renders hits, and keeps
its derived tables (state index, events, result sets) in the lake beside
the raw tables. ``docs/mining.md`` has the user guide with runnable examples.

It may import :mod:`datadrive.lake`, :mod:`datadrive.sources`,
:mod:`datadrive.viz`, :mod:`datadrive.compute` and :mod:`datadrive.core`
(and :mod:`datadrive.errors`); nothing above it (curate, models, sim, ...).
"""
