package accord.abac_test

import rego.v1

cfg := {
	"affirming": {"confidential": ["instance_identity", "executables"]},
	"hours": {"from": 7, "to": 20},
}

req(clearance, classification, tv, network, hour) := {
	"subject": {"id": "a", "clearance": clearance, "attestation": {"trust_vector": tv}},
	"resource": {"classification": classification},
	"environment": {"network": network, "hour": hour},
}

affirming := {"instance_identity": 2, "executables": 2}

test_cleared_and_attested_in_hours if {
	data.accord.abac.allow with input as req("confidential", "confidential", affirming, "external", 10)
		with data.accord.settings.abac as cfg
}

test_low_clearance_denied if {
	d := data.accord.abac.decision with input as req("internal", "confidential", affirming, "internal", 10)
		with data.accord.settings.abac as cfg
	not d.allow
	"clearance below the resource's classification" in d.reasons
}

test_weak_attestation_denied if {
	not data.accord.abac.allow with input as req("confidential", "confidential", {"instance_identity": 2, "executables": 32}, "internal", 10)
		with data.accord.settings.abac as cfg
}

test_secret_needs_internal_network if {
	not data.accord.abac.allow with input as req("secret", "secret", affirming, "external", 10)
		with data.accord.settings.abac as cfg
	data.accord.abac.allow with input as req("secret", "secret", affirming, "internal", 10)
		with data.accord.settings.abac as cfg
}

test_outside_hours_denied if {
	not data.accord.abac.allow with input as req("secret", "public", affirming, "internal", 22)
		with data.accord.settings.abac as cfg
}
