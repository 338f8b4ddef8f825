# Least-privilege discovery (draft §3.5): which registry records a requester may see, and which
# of their capabilities. Never reveals a record the policy denies, not even through counts: the
# registry asks for every record and drops the denied ones before counting.
#
# input.requester: id, domain, owner, teams, capabilities, caller_type
# input.query:     capabilities sought (empty: any)
# input.record:    agent_id, domain, owner, team, status, visibility (public|domain|team|owner),
#                  capabilities
# Data: data.accord.settings.discovery.hidden_prefixes (capabilities never shown through discovery)
#       data.accord.settings.discovery.teams: owner -> [team] (a requester's teams are those of
#       its owner: what the registry does not take from the requester itself)
#
# An owner is named "<issuer>#<subject>" (the owner binding signed into the credential). A
# requester whose caller_type is "operator" (the domain's admin token) sees every record, of any
# status, with all its capabilities.
#
# The registry never runs this over every record: accord.discovery_filter turns the same rules,
# for one requester, into the record predicates it applies to its index, and this policy then
# re-checks each record of the page. Keep the two in step (a property test holds them equal).
package accord.discovery

import rego.v1

default allow := false

default settings := {}

settings := data.accord.settings.discovery

requester := input.requester

record := input.record

hidden_prefixes := object.get(settings, "hidden_prefixes", [])

operator if requester.caller_type == "operator"

hidden(c) if {
	not operator
	some p in hidden_prefixes
	startswith(c, p)
}

# the requester's own teams, and its owner's per the settings
requester_teams contains t if some t in object.get(requester, "teams", [])

requester_teams contains t if {
	owner := object.get(requester, "owner", "")
	owner != ""
	some t in object.get(object.get(settings, "teams", {}), owner, [])
}

sought := {c | some c in object.get(input.query, "capabilities", [])}

# what the requester may learn of the record's capabilities
shown := {c | some c in record.capabilities; not hidden(c)} if count(sought) == 0

else := {c | some c in record.capabilities; c in sought; not hidden(c)}

visible if operator

visible if record.visibility == "public"

visible if {
	record.visibility == "domain"
	requester.domain == record.domain
}

visible if {
	record.visibility == "team"
	requester.domain == record.domain
	some t in requester_teams
	t == record.team
}

visible if {
	record.visibility == "owner"
	object.get(requester, "owner", "") != ""
	requester.owner == record.owner
}

authenticated if requester.id != ""

status_ok if record.status == "registered"

status_ok if operator

allow if {
	authenticated
	status_ok
	visible
	count(shown) > 0
}

reasons contains "requester not authenticated" if not authenticated

reasons contains "record not registered" if not status_ok

reasons contains "record not visible to the requester" if not visible

reasons contains "no matching capability the requester may see" if count(shown) == 0

# the reasons are worked out only for a deny
decision := {"allow": true, "reasons": set(), "capabilities": shown} if allow

else := {"allow": false, "reasons": reasons, "capabilities": set()}
