package accord.issuance_test

import rego.v1

passed := {
	"proof_of_possession": "passed", "initial_trust": "passed", "attestation": "passed",
	"aibom": "passed", "provider_endorsement": "passed", "owner_binding": "passed",
}

full := {
	"checks": passed,
	"requested_capabilities": ["calendar.read", "mail.send", "files.delete"],
	"endorsed_capabilities": ["calendar.read", "mail.send", "files.delete"],
	"owner_scope": ["calendar.read", "mail.send"],
	"attestation": {"trust_vector": {"instance_identity": 2, "executables": 2, "hardware": 2, "configuration": 2}},
	"lifetime_secs": 3600,
}

test_everything_verified_is_issued_with_the_intersection if {
	d := data.accord.issuance.decision with input as full
	d.allow
	d.capabilities == {"calendar.read", "mail.send"}
}

test_the_strict_default_needs_every_check if {
	d := data.accord.issuance.decision with input as object.union(full, {"checks": object.union(passed, {"aibom": "absent"})})
		with data.accord.settings.issuance.require as {}
	not d.allow
	"aibom is required and was not verified" in d.reasons
}

test_a_domain_may_waive_a_check if {
	data.accord.issuance.allow with input as object.union(full, {"checks": object.union(passed, {"aibom": "absent"})})
		with data.accord.settings.issuance.require as {"aibom": false}
}

test_proof_of_possession_cannot_be_waived if {
	not data.accord.issuance.allow with input as object.union(full, {"checks": object.union(passed, {"proof_of_possession": "absent"})})
		with data.accord.settings.issuance.require as {"proof_of_possession": false}
}

test_weak_attestation_is_refused if {
	not data.accord.issuance.allow with input as object.union(full, {"attestation": {"trust_vector": {"instance_identity": 32}}})
		with data.accord.settings.issuance.require as {}
}

# the shipped settings are the strict default: every piece of evidence, and an affirming
# attestation; proof of possession and initial trust alone are not enough
test_the_shipped_settings_require_every_check if {
	data.accord.issuance.allow with input as full
	checks := {"proof_of_possession": "passed", "initial_trust": "passed"}
	d := data.accord.issuance.decision with input as {"checks": checks, "requested_capabilities": ["a.b"], "lifetime_secs": 3600}
	not d.allow
	"attestation is required and was not verified" in d.reasons
	"owner_binding is required and was not verified" in d.reasons
	not data.accord.issuance.allow with input as object.union(full, {"attestation": {"trust_vector": {"instance_identity": 2, "configuration": 32}}})
		with data.accord.settings.issuance.affirming as ["instance_identity", "configuration"]
}

test_lifetime_is_capped if {
	not data.accord.issuance.allow with input as object.union(full, {"lifetime_secs": 86400})
}

test_allowed_capabilities_narrow_further if {
	d := data.accord.issuance.decision with input as full
		with data.accord.settings.issuance.allowed_capabilities as ["calendar.*"]
	d.capabilities == {"calendar.read"}
}

test_allowed_capabilities_may_be_exact_names_or_globs if {
	d := data.accord.issuance.decision with input as full
		with data.accord.settings.issuance.allowed_capabilities as ["calendar.read"]
	d.capabilities == {"calendar.read"}
	e := data.accord.issuance.decision with input as full
		with data.accord.settings.issuance.allowed_capabilities as ["calendar"]
	e.capabilities == set()
	f := data.accord.issuance.decision with input as full
		with data.accord.settings.issuance.allowed_capabilities as ["**"]
	f.capabilities == {"calendar.read", "mail.send"}
	g := data.accord.issuance.decision with input as full
		with data.accord.settings.issuance.allowed_capabilities as ["calendar.rea?"]
	g.capabilities == {"calendar.read"}
}

test_a_renewal_needs_only_what_renewal_require_asks if {
	checks := {"proof_of_possession": "passed"}
	renewal := {"checks": checks, "requested_capabilities": ["a.b"], "lifetime_secs": 3600, "renewal": true}
	data.accord.issuance.allow with input as renewal
	d := data.accord.issuance.decision with input as renewal
		with data.accord.settings.issuance.renewal_require as {"attestation": true}
	not d.allow
	"attestation is required and was not verified" in d.reasons
	not data.accord.issuance.allow with input as object.union(renewal, {"renewal": false})
}
