"""The evaluation harness of issue 8 (scripts/reproduce.sh) and the pieces it shares with
scripts/bench_switch.py: starting pipeswitchd, clients, statistics, the configuration table.
docs/reproduce.md says how to run it and what each figure measures."""
