# Relationship-based access control: owner, team and delegated-by relationships, derived from
# the registry projection by the caller and passed in input.relations.
#   input.relations.owner_of:      agent ids the requester (or its owner) owns
#   input.relations.teams:         teams of the requester's owner
#   input.relations.delegated_by:  owners who delegated to the requester
# Data: data.accord.settings.rebac.team_actions (what team members may do to each other's agents)
package accord.rebac

import rego.v1

default allow := false

default settings := {}

settings := data.accord.settings.rebac

relations := object.get(input, "relations", {})

owner if input.resource.id in object.get(relations, "owner_of", [])

teammate if {
	some t in object.get(relations, "teams", [])
	t == input.resource.team
	input.action in object.get(settings, "team_actions", ["read", "discover"])
}

delegate if input.resource.owner in object.get(relations, "delegated_by", [])

allow if owner

allow if teammate

allow if delegate

reasons contains "no owner, team or delegation relationship to the resource" if not allow

decision := {"allow": allow, "reasons": reasons}
