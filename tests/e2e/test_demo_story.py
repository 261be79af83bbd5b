"""End to end over `dramac dev`: the `dramac demo` story (its own functions), from a new agency to a
completed execution that called a receiver and qualified the contact, then a module published,
installed, upgraded and exported (the export downloaded from the stack's moto S3)."""

from dramac_dev.demo import run_story
from dramac_dev.receiver import Receiver


def test_demo_story_runs_workflow_on_a_contact_created_over_http(local_stack, database_url):
    lines: list[str] = []
    with Receiver() as receiver:
        result = run_story(local_stack.url, database_url, receiver.url, lambda: [r.body for r in receiver.requests],
                           say=lines.append)
    steps = [(s["type"], s["status"]) for s in result.execution["steps"]]
    assert result.execution["status"] == "completed", "\n".join(lines + local_stack.output[-30:])
    assert steps == [("condition", "completed"), ("http_request", "completed"), ("update_record", "completed")]
    assert result.received == [{"email": result.contact["email"], "score": 80}]
    assert result.contact["status"] == "lead" and result.contact_after["status"] == "qualified"
    assert result.execution["steps"][2]["output"]["id"] == result.contact["id"]
    assert (result.lifecycle["installed_version"], result.lifecycle["upgraded_version"]) == ("1.0.0", "1.1.0")
    assert result.lifecycle["export_tables"] == {"notes": 1, "module_data": 0}
    assert result.lifecycle["exported_rows"] == 1
    assert result.ok
    assert any("execution" in line and "completed" in line for line in lines)
    assert any(line.strip().startswith("plan: ALTER TABLE") and '"pinned" boolean' in line for line in lines)
