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

hidden(c) if {
	some p in object.get(settings, "hidden_prefixes", [])
	startswith(c, p)
}

# what the requester may learn of the record's capabilities
shown contains c if {
	some c in record.capabilities
	not hidden(c)
	wanted(c)
}

wanted(_) if count(object.get(input.query, "capabilities", [])) == 0

wanted(c) if c in input.query.capabilities

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

decision := {"allow": allow, "reasons": reasons, "capabilities": shown}
