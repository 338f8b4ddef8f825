package accord.rbac_test

import rego.v1

roles := {"roles": {
	"reader": {"permissions": ["agent:read"]},
	"operator": {"permissions": ["agent:*", "tool:invoke"]},
}}

test_a_reader_reads if {
	data.accord.rbac.allow with input as {
		"subject": {"id": "a", "roles": ["reader"]},
		"action": "read",
		"resource": {"type": "agent"},
	}
		with data.accord.settings.rbac as roles
}

test_a_reader_does_not_write if {
	not data.accord.rbac.allow with input as {
		"subject": {"id": "a", "roles": ["reader"]},
		"action": "update",
		"resource": {"type": "agent"},
	}
		with data.accord.settings.rbac as roles
}

test_wildcards_grant_any_action if {
	data.accord.rbac.allow with input as {
		"subject": {"id": "a", "roles": ["operator"]},
		"action": "decommission",
		"resource": {"type": "agent"},
	}
		with data.accord.settings.rbac as roles
}

test_owner_roles_count if {
	data.accord.rbac.allow with input as {
		"subject": {"id": "a", "roles": [], "owner_roles": ["reader"]},
		"action": "read",
		"resource": {"type": "agent"},
	}
		with data.accord.settings.rbac as roles
}

test_no_role_no_access if {
	d := data.accord.rbac.decision with input as {
		"subject": {"id": "a", "roles": []},
		"action": "read",
		"resource": {"type": "agent"},
	}
		with data.accord.settings.rbac as roles
	d.allow == false
	count(d.reasons) == 1
}
