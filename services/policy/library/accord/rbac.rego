# Role-based access control: roles come from the requester's credential or from its owner's
# identity; each role grants permissions "<resource type>:<action>" ("*" matches any part).
# Data: data.accord.settings.rbac.roles[role].permissions = [...]
package accord.rbac

import rego.v1

default allow := false

default settings := {}

settings := data.accord.settings.rbac

roles contains r if some r in input.subject.roles

roles contains r if some r in object.get(input.subject, "owner_roles", [])

grants(permission) if {
	some r in roles
	some p in settings.roles[r].permissions
	matches(p, permission)
}

matches(p, permission) if p == permission

matches(p, permission) if {
	parts := split(p, ":")
	want := split(permission, ":")
	count(parts) == 2
	count(want) == 2
	part_matches(parts[0], want[0])
	part_matches(parts[1], want[1])
}

part_matches(p, _) if p == "*"

part_matches(p, w) if p == w

permission := sprintf("%s:%s", [input.resource.type, input.action])

allow if grants(permission)

reasons contains sprintf("no role of %s grants %s", [input.subject.id, permission]) if not allow

decision := {"allow": allow, "reasons": reasons}
