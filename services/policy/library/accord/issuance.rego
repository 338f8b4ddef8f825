# The Credential Authority's issuance policy (draft §3.1): which evidence a credential needs in
# this domain, which capabilities it may carry (requested ∩ endorsed by the provider ∩ the
# owner's scope ∩ allowed here), and how long it may live.
#
# input.checks:          {check: "passed" | "absent"} for proof_of_possession, initial_trust,
#                        attestation, aibom, provider_endorsement, owner_binding
# input.requested_capabilities, input.endorsed_capabilities (absent: no endorsement),
# input.owner_scope (absent: no owner binding), input.attestation.trust_vector (AR4SI),
# input.lifetime_secs, input.renewal (a renewal by a live credential)
# Data: data.accord.settings.issuance.require, .renewal_require, .allowed_capabilities (glob patterns),
#       .affirming (trust vector claims that must be affirming), .max_lifetime_secs
package accord.issuance

import rego.v1

default allow := false

default cfg := {}

cfg := data.accord.settings.issuance

renewal := object.get(input, "renewal", false)

# the strict default: every check required at enrollment
required := object.union(
	{
		"proof_of_possession": true, "initial_trust": true, "attestation": true,
		"aibom": true, "provider_endorsement": true, "owner_binding": true,
	},
	object.get(cfg, "require", {}),
) if not renewal

# a renewal is granted by a live credential whose evidence was checked at enrollment (its
# owner, AIBOM and capabilities carry over); `renewal_require` asks for fresh evidence, e.g.
# {"attestation": true} for re-attestation at every renewal
required := object.union({"proof_of_possession": true}, object.get(cfg, "renewal_require", {})) if renewal

missing contains check if {
	some check, needed in required
	needed
	object.get(input.checks, check, "absent") != "passed"
}

# proof of possession can never be waived
missing contains "proof_of_possession" if object.get(input.checks, "proof_of_possession", "absent") != "passed"

requested := {c | some c in input.requested_capabilities}

# absent endorsement or owner scope: no narrowing from that side (policy decides whether
# their absence is acceptable through `required`)
endorsed(_) if not input.endorsed_capabilities

endorsed(c) if c in input.endorsed_capabilities

scoped(_) if not input.owner_scope

scoped(c) if c in input.owner_scope

permitted(c) if {
	some pattern in object.get(cfg, "allowed_capabilities", ["**"])
	glob.match(pattern, ["."], c)
}

capabilities := {c | some c in requested; endorsed(c); scoped(c); permitted(c)}

# AR4SI: a claim is affirming when its value is 2..31 (warning 32..95, contraindicated 96..127)
affirming(claim) if {
	v := object.get(object.get(object.get(input, "attestation", {}), "trust_vector", {}), claim, 0)
	v >= 2
	v <= 31
}

trust_ok if not required.attestation

trust_ok if {
	required.attestation
	every claim in object.get(cfg, "affirming", ["instance_identity"]) {
		affirming(claim)
	}
}

lifetime_ok if input.lifetime_secs <= object.get(cfg, "max_lifetime_secs", 3600)

allow if {
	count(missing) == 0
	trust_ok
	lifetime_ok
}

reasons contains sprintf("%s is required and was not verified", [c]) if some c in missing

reasons contains "attestation result below the domain's minimum" if not trust_ok

reasons contains "requested lifetime above the domain's maximum" if not lifetime_ok

decision := {"allow": allow, "reasons": reasons, "capabilities": capabilities}
