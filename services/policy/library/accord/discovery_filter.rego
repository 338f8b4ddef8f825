# The discovery policy for one requester, as record predicates (ADR 0015): what the registry
# applies to its index or its SQL instead of evaluating accord.discovery per record. It must
# allow every record accord.discovery allows and no other; the registry still re-checks each
# record of a page with accord.discovery, so a filter wider than the policy only costs a
# shorter page, never a leak.
#
# input: requester, query (as accord.discovery's)
# decision.clauses: a record is visible when it matches at least one clause; a clause matches
#   when each of its members equals the record's (an empty clause matches every record)
# decision.statuses: the record statuses shown (empty: every status)
# decision.hidden_prefixes: capabilities never shown (a record is shown only with at least
#   one capability not hidden and, when the query seeks capabilities, sought)
package accord.discovery_filter

import data.accord.discovery
import rego.v1

requester := input.requester

clauses contains {} if discovery.operator

clauses contains {"visibility": "public"}

clauses contains {"visibility": "domain", "domain": requester.domain}

clauses contains {"visibility": "team", "domain": requester.domain, "team": t} if {
	some t in discovery.requester_teams
}

clauses contains {"visibility": "owner", "owner": requester.owner} if {
	object.get(requester, "owner", "") != ""
}

statuses := [] if discovery.operator

else := ["registered"]

hidden_prefixes := [] if discovery.operator

else := discovery.hidden_prefixes

decision := {
	"allow": true,
	"reasons": set(),
	"clauses": clauses,
	"statuses": statuses,
	"hidden_prefixes": hidden_prefixes,
} if discovery.authenticated

else := {"allow": false, "reasons": {"requester not authenticated"}}
