package accord.rebac_test

import rego.v1

test_the_owner_may if {
	data.accord.rebac.allow with input as {
		"action": "update",
		"resource": {"id": "agent-1", "owner": "alice", "team": "travel"},
		"relations": {"owner_of": ["agent-1"]},
	}
}

test_a_teammate_may_read_not_update if {
	data.accord.rebac.allow with input as {
		"action": "read",
		"resource": {"id": "agent-1", "owner": "alice", "team": "travel"},
		"relations": {"teams": ["travel"]},
	}
	not data.accord.rebac.allow with input as {
		"action": "update",
		"resource": {"id": "agent-1", "owner": "alice", "team": "travel"},
		"relations": {"teams": ["travel"]},
	}
}

test_a_delegate_may if {
	data.accord.rebac.allow with input as {
		"action": "invoke",
		"resource": {"id": "agent-1", "owner": "alice", "team": "travel"},
		"relations": {"delegated_by": ["alice"]},
	}
}

test_a_stranger_may_not if {
	d := data.accord.rebac.decision with input as {
		"action": "read",
		"resource": {"id": "agent-1", "owner": "alice", "team": "travel"},
		"relations": {"owner_of": ["agent-2"], "teams": ["finance"], "delegated_by": ["bob"]},
	}
	not d.allow
	count(d.reasons) == 1
}
