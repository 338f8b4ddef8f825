package accord.discovery_test

import rego.v1

requester := {"id": "spiffe://org-a.example/agent/r", "domain": "org-a", "owner": "bob", "teams": ["travel"], "capabilities": ["registry.discover"], "caller_type": "agent"}

record(visibility) := {
	"agent_id": "x", "domain": "org-a", "owner": "alice", "team": "travel", "status": "registered",
	"visibility": visibility, "capabilities": ["calendar.read", "mail.send", "admin.reset"],
}

cfg := {"hidden_prefixes": ["admin."]}

test_domain_records_are_seen_in_the_domain if {
	d := data.accord.discovery.decision with input as {"requester": requester, "query": {}, "record": record("domain")}
		with data.accord.settings.discovery as cfg
	d.allow
	d.capabilities == {"calendar.read", "mail.send"}
}

test_other_domains_do_not_see_domain_records if {
	not data.accord.discovery.allow with input as {"requester": object.union(requester, {"domain": "org-b"}), "query": {}, "record": record("domain")}
		with data.accord.settings.discovery as cfg
}

test_team_and_owner_visibility if {
	data.accord.discovery.allow with input as {"requester": requester, "query": {}, "record": record("team")}
		with data.accord.settings.discovery as cfg
	not data.accord.discovery.allow with input as {"requester": object.union(requester, {"teams": ["finance"]}), "query": {}, "record": record("team")}
		with data.accord.settings.discovery as cfg
	not data.accord.discovery.allow with input as {"requester": requester, "query": {}, "record": record("owner")}
		with data.accord.settings.discovery as cfg
	data.accord.discovery.allow with input as {"requester": object.union(requester, {"owner": "alice"}), "query": {}, "record": record("owner")}
		with data.accord.settings.discovery as cfg
}

test_only_sought_capabilities_are_revealed if {
	d := data.accord.discovery.decision with input as {"requester": requester, "query": {"capabilities": ["mail.send"]}, "record": record("public")}
		with data.accord.settings.discovery as cfg
	d.capabilities == {"mail.send"}
}

test_hidden_capabilities_never_match if {
	not data.accord.discovery.allow with input as {"requester": requester, "query": {"capabilities": ["admin.reset"]}, "record": record("public")}
		with data.accord.settings.discovery as cfg
}

test_suspended_records_are_not_discovered if {
	not data.accord.discovery.allow with input as {"requester": requester, "query": {}, "record": object.union(record("public"), {"status": "suspended"})}
		with data.accord.settings.discovery as cfg
}

test_anonymous_requesters_see_nothing if {
	d := data.accord.discovery.decision with input as {"requester": object.union(requester, {"id": ""}), "query": {}, "record": record("public")}
		with data.accord.settings.discovery as cfg
	not d.allow
	"requester not authenticated" in d.reasons
}

test_teams_come_from_the_owner_in_the_settings if {
	r := object.union(requester, {"teams": [], "owner": "https://idp#bob"})
	with_teams := object.union(cfg, {"teams": {"https://idp#bob": ["travel"]}})
	data.accord.discovery.allow with input as {"requester": r, "query": {}, "record": record("team")}
		with data.accord.settings.discovery as with_teams
	not data.accord.discovery.allow with input as {"requester": r, "query": {}, "record": record("team")}
		with data.accord.settings.discovery as cfg
}

test_operators_see_every_record_and_capability if {
	op := object.union(requester, {"caller_type": "operator", "domain": "org-z"})
	d := data.accord.discovery.decision with input as {"requester": op, "query": {}, "record": object.union(record("owner"), {"status": "suspended"})}
		with data.accord.settings.discovery as cfg
	d.allow
	d.capabilities == {"calendar.read", "mail.send", "admin.reset"}
}

test_the_filter_names_the_requesters_clauses if {
	r := object.union(requester, {"owner": "https://idp#bob"})
	d := data.accord.discovery_filter.decision with input as {"requester": r, "query": {}}
		with data.accord.settings.discovery as cfg
	d.allow
	d.clauses == {
		{"visibility": "public"},
		{"visibility": "domain", "domain": "org-a"},
		{"visibility": "team", "domain": "org-a", "team": "travel"},
		{"visibility": "owner", "owner": "https://idp#bob"},
	}
	d.statuses == ["registered"]
	d.hidden_prefixes == ["admin."]
}

test_the_filter_of_an_anonymous_requester_allows_nothing if {
	d := data.accord.discovery_filter.decision with input as {"requester": object.union(requester, {"id": ""}), "query": {}}
		with data.accord.settings.discovery as cfg
	not d.allow
}
