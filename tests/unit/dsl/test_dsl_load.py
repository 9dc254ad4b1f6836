"""Loading playbooks: each DSL feature normalises into the engine's ``Flow``."""

from __future__ import annotations

import hashlib
from pathlib import Path
from textwrap import dedent

import pytest

from playloop.dsl.errors import PlaybookError
from playloop.dsl.flow import Arc, Flow, LoopSpec, PolicyRule, RetryPolicy, ToolCall
from playloop.dsl.load import load_file, load_text

HEADER = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: t}\n"
VALID = sorted((Path(__file__).parents[2] / "fixtures" / "valid").glob("*.yaml"))


def load(body: str) -> Flow:
    """Load ``body`` after the three header lines: its first line is line 4."""
    return load_text(HEADER + dedent(body).lstrip("\n"))


def problems(body: str) -> str:
    with pytest.raises(PlaybookError) as caught:
        load(body)
    return str(caught.value)


# --- routing ----------------------------------------------------------------------------


def test_seed_form_when_block_fires_all_targets_and_else_is_the_fallback() -> None:
    flow = load(
        """
        workflow:
          - step: check
            next:
              - when: "{{ check.score < 0.9 }}"
                then:
                  - step: ask
                    args: {issue: low}
                  - step: notify
              - else:
                  - step: load
          - step: ask
          - step: notify
          - step: load
        """
    )
    routing = flow.step("check").next
    assert routing.mode == "exclusive"
    when = "{{ check.score < 0.9 }}"
    # line 7 is the `when:` key: both arcs of the block carry it, so the engine fires both
    assert routing.arcs == (
        Arc(step="ask", when=when, args={"issue": "low"}, line=7),
        Arc(step="notify", when=when, line=7),
        Arc(step="load", is_else=True, line=12),
    )


def test_seed_form_bare_target_is_an_unconditional_block_of_its_own() -> None:
    flow = load(
        """
        workflow:
          - step: a
            next:
              - when: "{{ workload.go }}"
                then: [b]
              - step: c
          - step: b
          - step: c
        """
    )
    routing = flow.step("a").next
    assert routing.mode == "exclusive"
    assert routing.arcs[1] == Arc(step="c", line=9)


def test_shorthand_next_as_a_name_and_as_a_list_of_names() -> None:
    flow = load(
        """
        workflow:
          - step: start
            next: [left, right]
          - step: left
            next: end
          - step: right
            next: [{step: end, args: {side: right}}]
          - step: end
        """
    )
    fan_out = flow.step("start").next
    assert fan_out.mode == "inclusive"  # a list of plain targets fans out
    assert [a.step for a in fan_out.arcs] == ["left", "right"]
    assert all(a.when is None and not a.is_else for a in fan_out.arcs)
    assert flow.step("left").next.arcs == (Arc(step="end", line=8),)
    assert flow.step("right").next.arcs[0].args == {"side": "right"}


@pytest.mark.parametrize("mode", ["exclusive", "inclusive"])
def test_canonical_form_keeps_its_mode_with_set_args_and_else(mode: str) -> None:
    flow = load(
        f"""
        workflow:
          - step: start
            next:
              spec: {{mode: {mode}}}
              arcs:
                - step: big
                  when: "{{{{ workload.n > 10 }}}}"
                  set: {{size: big}}
                  args: {{n: "{{{{ workload.n }}}}"}}
                - {{step: small, when: "{{{{ workload.n <= 10 }}}}", set: {{size: small}}}}
                - {{step: none, else: true}}
          - step: big
          - step: small
          - step: none
        """
    )
    routing = flow.step("start").next
    assert routing.mode == mode
    big, small, fallback = routing.arcs
    assert (big.set, big.args, big.line) == ({"size": "big"}, {"n": "{{ workload.n }}"}, 9)
    assert (small.when, small.set, small.line) == ("{{ workload.n <= 10 }}", {"size": "small"}, 13)
    assert fallback == Arc(step="none", is_else=True, line=14)


def test_canonical_mode_defaults_to_exclusive_and_arc_without_when_is_unconditional() -> None:
    flow = load(
        """
        workflow:
          - step: start
            next: {arcs: [{step: end}]}
          - step: end
        """
    )
    assert flow.step("start").next.mode == "exclusive"
    assert flow.step("start").next.arcs == (Arc(step="end", line=6),)


def test_step_args_are_kept_as_defaults_and_arcs_carry_their_own() -> None:
    flow = load(
        """
        workflow:
          - step: start
            next:
              - when: "{{ workload.x }}"
                then: [{step: greet, args: {name: Ada}}]
              - else: [greet]
          - step: greet
            args: {name: nobody, greeting: hello}
        """
    )
    arcs = flow.step("start").next.arcs
    assert arcs[0].args == {"name": "Ada"}
    assert arcs[1].args == {}
    assert flow.step("greet").args == {"name": "nobody", "greeting": "hello"}


# --- loops, retries, policies, timeouts ---------------------------------------------------


def test_loop_with_iterator_mode_and_max_in_flight() -> None:
    flow = load(
        """
        workflow:
          - step: each
            loop:
              in: "{{ workload.cities }}"
              iterator: city
              spec: {mode: parallel, max_in_flight: 4}
            tool: {kind: shell, cmds: ["echo {{ city }}"]}
          - step: plain
            loop: {in: [1, 2.5, "three"]}
        """
    )
    assert flow.step("each").loop == LoopSpec("{{ workload.cities }}", "city", "parallel", 4)
    assert flow.step("plain").loop == LoopSpec([1, 2.5, "three"], "item", "sequential", None)


def test_loop_iterator_is_known_only_to_its_own_step() -> None:
    text = problems(
        """
        workflow:
          - step: each
            loop: {in: [1, 2], iterator: city}
            next: after
          - step: after
            tool: {kind: shell, cmds: ["echo {{ city }}"]}
        """
    )
    assert "step 'after': field 'tool.cmds[0]': template refers to unknown name 'city'" in text


def test_iterator_and_input_keys_exist_inside_the_tool_only() -> None:
    text = problems(
        """
        workflow:
          - step: each
            loop: {in: [1, 2], iterator: city}
            tool:
              kind: shell
              input: {greeting: hi}
              cmds: ["echo {{ greeting }} {{ city }}"]
            next:
              - when: "{{ city == 1 or greeting }}"
                then: [after]
          - step: after
        """
    )
    assert text.splitlines() == [
        "<string>:12:15: step 'each': field 'next[0].when': template refers to unknown name 'city'",
        "<string>:12:15: step 'each': field 'next[0].when': template refers to unknown name"
        " 'greeting'",
    ]


def test_retry_policy_with_durations_and_error_types() -> None:
    flow = load(
        """
        workflow:
          - step: call
            tool: {kind: http, url: "https://example.com"}
            retry:
              attempts: 5
              delay: 500ms
              backoff: exponential
              max_delay: 1m
              jitter: 0.25
              on: [HTTPError.503, TimeoutError]
        """
    )
    assert flow.step("call").retry == RetryPolicy(
        attempts=5,
        delay=0.5,
        backoff="exponential",
        max_delay=60.0,
        jitter=0.25,
        on=("HTTPError.503", "TimeoutError"),
    )


def test_retry_max_delay_shorter_than_delay_is_an_error() -> None:
    text = problems(
        """
        workflow:
          - step: call
            retry: {attempts: 2, delay: 10s, max_delay: 1s}
        """
    )
    assert ":6:12: step 'call': field 'retry': max_delay is shorter than delay" in text


def test_policy_rules_keep_their_order_and_lines() -> None:
    flow = load(
        """
        workflow:
          - step: call
            tool:
              kind: http
              url: https://example.com
              spec:
                policy:
                  rules:
                    - when: "{{ error.type == 'HTTPError.503' }}"
                      then: {do: retry, attempts: 3, delay: 2s, backoff: linear, jitter: 0.1}
                    - when: "{{ error.type == 'HTTPError.404' }}"
                      then: {do: jump, to: missing}
                    - then: {do: fail}
          - step: missing
        """
    )
    assert flow.step("call").rules == (
        PolicyRule(
            do="retry",
            when="{{ error.type == 'HTTPError.503' }}",
            attempts=3,
            delay=2.0,
            backoff="linear",
            jitter=0.1,
            line=12,
        ),
        PolicyRule(do="jump", when="{{ error.type == 'HTTPError.404' }}", to="missing", line=14),
        PolicyRule(do="fail", line=16),
    )
    assert flow.reaches["call"] == {"missing"}  # a jump target counts as reachable


def test_timeout_on_the_step_and_in_tool_spec() -> None:
    flow = load(
        """
        workflow:
          - step: on_step
            tool: {kind: shell, cmds: [date]}
            timeout: 1.5m
          - step: in_spec
            tool: {kind: shell, cmds: [date], spec: {timeout: 250ms, pool: fast}}
          - step: both
            tool: {kind: shell, cmds: [date], spec: {timeout: 10s}}
            timeout: 3
          - step: plain_number
            tool: {kind: shell, cmds: [date], spec: {timeout: 7}}
        """
    )
    assert flow.step("on_step").timeout == 90.0
    assert (flow.step("in_spec").timeout, flow.step("in_spec").pool) == (0.25, "fast")
    assert flow.step("both").timeout == 3.0  # the step's own key wins
    assert flow.step("plain_number").timeout == 7.0


def test_zero_timeout_is_an_error() -> None:
    text = problems(
        """
        workflow:
          - step: s
            timeout: 0s
        """
    )
    assert "field 'timeout': Input should be greater than 0" in text


# --- tools -----------------------------------------------------------------------------


def test_tool_call_config_is_the_mapping_minus_kind_input_and_spec() -> None:
    flow = load(
        """
        workflow:
          - step: post
            tool:
              kind: http
              method: POST
              url: "https://example.com/{{ workload.id }}"
              json: {a: 1}
              input: {token: abc}
              spec: {timeout: 5s}
        """
    )
    assert flow.step("post").tool == ToolCall(
        kind="http",
        config={"method": "POST", "url": "https://example.com/{{ workload.id }}", "json": {"a": 1}},
        input={"token": "abc"},
    )


def test_a_step_without_tool_is_a_noop() -> None:
    flow = load("workflow:\n  - step: only\n")
    assert flow.step("only").tool == ToolCall(kind="noop")


def test_workbook_reference_is_resolved_at_load() -> None:
    flow = load(
        """
        workbook:
          - name: fetch
            tool:
              kind: http
              url: "{{ workload.base }}/{{ path }}"
              input: {path: users, page: 1}
              spec:
                timeout: 30s
                policy: {rules: [{then: {do: retry, attempts: 2}}]}
        workflow:
          - step: users
            tool:
              kind: workbook
              name: fetch
              input: {page: 2}
          - step: quick_users
            tool:
              kind: workbook
              name: fetch
              spec: {timeout: 2s}
        """
    )
    users = flow.step("users")
    assert users.tool == ToolCall(
        kind="http",
        config={"url": "{{ workload.base }}/{{ path }}"},
        input={"path": "users", "page": 2},  # the step's input wins over the workbook's
    )
    assert users.timeout == 30.0
    assert users.rules == (PolicyRule(do="retry", attempts=2, line=12),)
    assert flow.step("quick_users").timeout == 2.0  # the step's tool.spec wins


def test_a_workbook_tool_cannot_be_a_workbook_reference() -> None:
    text = problems(
        """
        workbook:
          - name: loop
            tool: {kind: workbook, name: loop}
        workflow:
          - step: s
        """
    )
    assert (
        "field 'workbook[0].tool.kind': a workbook tool cannot call another workbook tool" in text
    )


def test_python_code_is_not_a_template_but_templated_config_skips_type_checks() -> None:
    flow = load(
        """
        workflow:
          - step: py
            tool:
              kind: python
              code: |
                result = "{{ not_a_template }}"
          - step: call
            tool: {kind: http, url: "https://example.com", verify: "{{ workload.verify }}"}
        """
    )
    assert flow.step("py").tool.config["code"] == 'result = "{{ not_a_template }}"\n'
    assert flow.step("call").tool.config["verify"] == "{{ workload.verify }}"


def test_templates_may_read_input_keys_step_names_and_context_names() -> None:
    flow = load(
        """
        workflow:
          - step: first
            tool:
              kind: shell
              input: {who: "{{ workload.user }}"}
              cmds: ["echo {{ who }} {{ execution_id }} {{ now() }} {{ range(3) | list }}"]
            next:
              - when: "{{ first.code == 0 and result is defined }}"
                then: [second]
          - step: second
        """
    )
    assert flow.step("first").next.arcs[0].step == "second"


# --- entry step, metadata, graph ------------------------------------------------------------


def test_entry_step_from_executor_then_start_then_first() -> None:
    explicit = load(
        """
        executor: {spec: {entry_step: b, profile: local}}
        workflow: [{step: a}, {step: start}, {step: b}]
        """
    )
    assert explicit.entry == "b"
    assert load("workflow: [{step: a}, {step: start}]").entry == "start"
    assert load("workflow: [{step: a}, {step: b}]").entry == "a"


def test_flow_metadata_hash_and_source() -> None:
    text = dedent(
        """
        apiVersion: noetl.io/v2
        kind: Playbook
        metadata: {name: demo, version: 2, description: A demo}
        workload: {x: 1}
        keychain: [{name: token}]
        workflow: [{step: a}]
        """
    )
    flow = load_text(text)
    assert (flow.name, flow.path, flow.version, flow.description) == ("demo", "demo", "2", "A demo")
    assert flow.workload == {"x": 1}
    assert flow.content_hash == hashlib.sha256(text.encode()).hexdigest()
    assert flow.source_file is None
    assert load_text(text, filename="pb/demo.yaml").source_file == "pb/demo.yaml"
    with_path = load_text(text.replace("name: demo,", "name: demo, path: a/b/demo,"))
    assert with_path.path == "a/b/demo"


def test_load_file_sets_source_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(HEADER + "workflow: [{step: a}]\n", encoding="utf-8")
    assert load_file(path).source_file == str(path)


def test_predecessors_reaches_and_joins() -> None:
    flow = load(
        """
        workflow:
          - step: start
            next: [a, b]
          - step: a
            next: join
          - step: b
            next: join
          - step: join
        """
    )
    assert flow.predecessors["join"] == ("a", "b")
    assert flow.is_join("join") and not flow.is_join("a")
    assert flow.reaches["start"] == {"a", "b", "join"}


def test_a_step_that_routes_to_itself_unconditionally_never_ends() -> None:
    text = problems("workflow: [{step: spin, next: spin}]\n")
    assert text == (
        "<string>:4:31: step 'spin': field 'next': cycle without exit: step 'spin' routes to"
        " itself unconditionally"
    )


def test_a_cycle_with_a_conditional_exit_is_fine() -> None:
    flow = load(
        """
        workflow:
          - step: poll
            next:
              - when: "{{ poll.done }}"
                then: [finish]
              - else: [poll]
          - step: finish
        """
    )
    assert flow.reaches["poll"] == {"poll", "finish"}


# --- YAML -----------------------------------------------------------------------------


def test_types_are_preserved() -> None:
    flow = load(
        """
        workload:
          count: 3
          ratio: 0.5
          flag: true
          nothing: null
          quoted: "42"
          day: 2024-01-31
          nested: {list: [1, "2", 3.0, false]}
        workflow:
          - step: a
            tool: {kind: noop, result: [1, 2.5, true, null, "x"]}
            next: [{step: b, args: {n: 7, f: 1.25, ok: false, s: "007"}}]
          - step: b
        """
    )
    assert flow.workload == {
        "count": 3,
        "ratio": 0.5,
        "flag": True,
        "nothing": None,
        "quoted": "42",
        "day": "2024-01-31",  # timestamps stay text: JSON in, JSON out
        "nested": {"list": [1, "2", 3.0, False]},
    }
    assert type(flow.workload["count"]) is int and type(flow.workload["ratio"]) is float
    assert flow.step("a").tool.config["result"] == [1, 2.5, True, None, "x"]
    assert flow.step("a").next.arcs[0].args == {"n": 7, "f": 1.25, "ok": False, "s": "007"}


def test_on_is_a_key_not_a_boolean() -> None:
    flow = load(
        """
        workflow:
          - step: a
            retry: {attempts: 2, on: [ShellError]}
        """
    )
    retry = flow.step("a").retry
    assert retry is not None and retry.on == ("ShellError",)


def test_yaml_merge_keys_are_not_duplicates() -> None:
    flow = load(
        """
        workload:
          defaults: &defaults {kind: shell, cmds: [date]}
        workflow:
          - step: a
            tool:
              <<: *defaults
              cmds: [uptime]
        """
    )
    assert flow.step("a").tool == ToolCall(kind="shell", config={"cmds": ["uptime"]})


def test_non_utf8_file_is_a_playbook_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(HEADER.encode() + b"workflow: [{step: caf\xe9}]\n")
    with pytest.raises(PlaybookError, match=r"latin1.yaml:4:\d+: not UTF-8 text"):
        load_file(path)


def test_a_document_that_is_not_a_mapping() -> None:
    with pytest.raises(
        PlaybookError, match=r"^<string>:1:1: the playbook is a list, not a mapping$"
    ):
        load_text("- step: a\n")


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    text = problems(
        """
        workflow:
          - step: a
            tool: {kind: noop, reslt: 1}
            next: nowhere
          - step: b
            retry: {attempts: 0}
        """
    )
    lines = text.splitlines()
    assert lines == [
        "<string>:6:24: step 'a': field 'tool.reslt': unknown key 'reslt' for tool kind 'noop'"
        " (did you mean 'result'?)",
        "<string>:7:11: step 'a': field 'next': unknown step 'nowhere'",
        "<string>:9:23: step 'b': field 'retry.attempts': Input should be greater than or equal"
        " to 1 (got 0)",
    ]


def test_unknown_key_without_a_close_match_lists_the_keys() -> None:
    text = problems(
        """
        workflow:
          - step: a
            loop: {in: [1], zzz: 1}
        """
    )
    assert "field 'loop.zzz': unknown key 'zzz'; expected one of: in, iterator, spec" in text


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid_fixtures_load(path: Path) -> None:
    flow = load_file(path)
    assert flow.entry in flow.steps
    assert all(arc.step in flow.steps for s in flow.steps.values() for arc in s.next.arcs)


def _two_hundred_steps(tag: str) -> str:
    """A chain of 200 http steps, each with two templates of its own and a retry."""
    steps = "".join(
        f"""
  - step: s{i}
    tool:
      kind: http
      url: "{{{{ workload.base }}}}/items/{i}?run={tag}"
      headers: {{X-Step: s{i}}}
    retry: {{attempts: 3, delay: 1s, backoff: exponential}}
    next:
      - when: "{{{{ s{i}.status_code == 200 and '{tag}' }}}}"
        then: [{{step: s{i + 1}, args: {{n: {i}}}}}]
      - else: [{{step: end}}]
"""
        for i in range(200)
    )
    return HEADER + "workload: {base: x}\nworkflow:" + steps + "  - step: s200\n  - step: end\n"


def test_loading_two_hundred_steps() -> None:
    """How long it takes is measured in benchmarks/ (``python -m benchmarks``), not here."""
    flow = load_text(_two_hundred_steps("a"))
    assert len(flow.steps) == 202
    assert len(flow.predecessors["end"]) == 200
    assert flow.reaches["s0"] >= {"s199", "s200", "end"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "workflw: [{step: a}]\nworkflow: [{step: a}]\n",
            "<string>:4:1: field 'workflw': unknown key 'workflw' (did you mean 'workflow'?)",
        ),
        (
            "executor: {spec: {entry: a}}\nworkflow: [{step: a}]\n",
            "<string>:4:19: field 'executor.spec.entry': unknown key 'entry'"
            " (did you mean 'entry_step'?)",
        ),
        (
            "workflow: [{step: a, retry: {attempts: 2, dealy: 1s}}]\n",
            "<string>:4:43: step 'a': field 'retry.dealy': unknown key 'dealy'"
            " (did you mean 'delay'?)",
        ),
        (
            "workflow: [{step: a, next: [{when: x, then: [a], thn: [a]}]}]\n",
            "<string>:4:50: step 'a': field 'next[0].thn': unknown key 'thn'"
            " (did you mean 'then'?)",
        ),
        (
            "workflow: [{step: a, next: {arcs: [{step: a, when: x, sett: {}}]}}]\n",
            "<string>:4:55: step 'a': field 'next.arcs[0].sett': unknown key 'sett'"
            " (did you mean 'set'?)",
        ),
        (
            "workflow: [{step: a, next: {spec: {mod: inclusive}, arcs: [{step: a}]}}]\n",
            "<string>:4:36: step 'a': field 'next.spec.mod': unknown key 'mod'"
            " (did you mean 'mode'?)",
        ),
        (
            "workflow: [{step: a, tool: {kind: noop, spec: {policy: {rules: [{wen: x, then: {do: fail}}]}}}}]\n",
            "<string>:4:66: step 'a': field 'tool.spec.policy.rules[0].wen': unknown key 'wen'"
            " (did you mean 'when'?)",
        ),
        (
            "workflow: [{step: a, tool: {kind: noop, spec: {timout: 1}}}]\n",
            "<string>:4:48: step 'a': field 'tool.spec.timout': unknown key 'timout'"
            " (did you mean 'timeout'?)",
        ),
        (
            "workbook: [{name: w, tol: {kind: noop}}]\nworkflow: [{step: a}]\n",
            "<string>:4:22: field 'workbook[0].tol': unknown key 'tol' (did you mean 'tool'?)",
        ),
    ],
)
def test_unknown_keys_anywhere_are_reported_with_a_hint(body: str, expected: str) -> None:
    assert expected in problems(body).splitlines()


def test_a_next_item_shape_error_names_the_item() -> None:
    text = problems("workflow: [{step: a, next: [5]}]\n")
    assert text == (
        "<string>:4:29: step 'a': field 'next[0]': must be a step name, {when, then}, {else}"
        " or {step, args} (got 5)"
    )
