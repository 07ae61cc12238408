"""Attribute keys that falco-risk writes on a tagged log record.

Names follow Splunk's risk framework and ESCU annotations where Splunk searches
read them, and OpenTelemetry's ``security_rule.*`` semantic conventions for the
rule identity.
"""

from typing import Final

RISK_SCORE: Final = "risk_score"
RISK_OBJECT: Final = "risk_object"
RISK_OBJECT_TYPE: Final = "risk_object_type"
RISK_MESSAGE: Final = "risk_message"
THREAT_OBJECT: Final = "threat_object"
THREAT_OBJECT_TYPE: Final = "threat_object_type"

MITRE_ATTACK: Final = "annotations.mitre_attack"
MITRE_TECHNIQUE: Final = "annotations.mitre_attack.mitre_technique"
MITRE_TACTIC: Final = "annotations.mitre_attack.mitre_tactic"
MITRE_TACTIC_ID: Final = "annotations.mitre_attack.mitre_tactic_id"
KILL_CHAIN_PHASES: Final = "annotations.kill_chain_phases"
NIST: Final = "annotations.nist"
CIS20: Final = "annotations.cis20"
IMPACT: Final = "annotations.impact"
CONFIDENCE: Final = "annotations.confidence"
ANALYTIC_STORIES: Final = "analyticstories"

SECURITY_RULE_NAME: Final = "security_rule.name"
SECURITY_RULE_UUID: Final = "security_rule.uuid"
SECURITY_RULE_VERSION: Final = "security_rule.version"
SECURITY_RULE_CATEGORY: Final = "security_rule.category"
SECURITY_RULE_RULESET_NAME: Final = "security_rule.ruleset.name"

# Set only when more than one detection matched a record: the names of all of
# them, in catalog order. The record carries the attributes of one: the
# highest risk score, the earliest in the catalog among equals.
MATCHED_DETECTIONS: Final = "falco_risk.matched_detections"
