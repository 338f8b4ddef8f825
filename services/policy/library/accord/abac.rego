# Attribute-based access control over the requester (clearance, caller type), the resource
# (classification), the environment (network, hour) and the attestation result (AR4SI
# trustworthiness vector).
# Data: data.accord.settings.abac.levels, .affirming (claims by classification), .hours.
package accord.abac

import rego.v1

default allow := false

default settings := {}

settings := data.accord.settings.abac

levels := object.get(settings, "levels", {"public": 0, "internal": 1, "confidential": 2, "secret": 3})

clearance := levels[input.subject.clearance]

classification := levels[input.resource.classification]

# AR4SI: a claim is affirming when its value is 2..31 (warning 32..95, contraindicated 96..127)
affirming(claim) if {
	v := object.get(object.get(object.get(input.subject, "attestation", {}), "trust_vector", {}), claim, 0)
	v >= 2
	v <= 31
}

# the claims the resource's classification requires to be affirming
trust_ok if {
	needed := object.get(object.get(settings, "affirming", {}), input.resource.classification, [])
	every claim in needed {
		affirming(claim)
	}
}

network_ok if input.resource.classification != "secret"

network_ok if {
	input.resource.classification == "secret"
	input.environment.network == "internal"
}

hours := object.get(settings, "hours", {"from": 0, "to": 24})

time_ok if {
	input.environment.hour >= hours.from
	input.environment.hour < hours.to
}

allow if {
	clearance >= classification
	trust_ok
	network_ok
	time_ok
}

reasons contains "clearance below the resource's classification" if not clearance >= classification

reasons contains "attestation result below what the classification requires" if not trust_ok

reasons contains "secret resources only from the internal network" if not network_ok

reasons contains "outside the allowed hours" if not time_ok

decision := {"allow": allow, "reasons": reasons}
