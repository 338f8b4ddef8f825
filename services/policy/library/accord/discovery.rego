# Least-privilege discovery (draft §3.5): which registry records a requester may see, and which
# of their capabilities. Never reveals a record the policy denies, not even through counts: the
# registry asks for every record and drops the denied ones before counting.
#
# input.requester: id, domain, owner, teams, capabilities, caller_type
# input.query:     capabilities sought (empty: any)
# input.record:    agent_id, domain, owner, team, status, visibility (public|domain|team|owner),
#                  capabilities
# Data: data.accord.settings.discovery.hidden_prefixes (capabilities never shown through discovery)
package accord.discovery

import rego.v1

default allow := false

default settings := {}

settings := data.accord.settings.discovery

requester := input.requester

record := input.record

hidden_prefixes := object.get(settings, "hidden_prefixes", [])

hidden(c) if {
	some p in hidden_prefixes
	startswith(c, p)
}

sought := {c | some c in object.get(input.query, "capabilities", [])}

# what the requester may learn of the record's capabilities
shown := {c | some c in record.capabilities; not hidden(c)} if count(sought) == 0

else := {c | some c in record.capabilities; c in sought; not hidden(c)}

visible if record.visibility == "public"

visible if {
	record.visibility == "domain"
	requester.domain == record.domain
}

visible if {
	record.visibility == "team"
	requester.domain == record.domain
	some t in requester.teams
	t == record.team
}

visible if {
	record.visibility == "owner"
	requester.owner == record.owner
}

authenticated if requester.id != ""

allow if {
	authenticated
	record.status == "registered"
	visible
	count(shown) > 0
}

reasons contains "requester not authenticated" if not authenticated

reasons contains "record not registered" if record.status != "registered"

reasons contains "record not visible to the requester" if not visible

reasons contains "no matching capability the requester may see" if count(shown) == 0

# the reasons are worked out only for a deny
decision := {"allow": true, "reasons": set(), "capabilities": shown} if allow

else := {"allow": false, "reasons": reasons, "capabilities": set()}
