"""Public paths of the service's own web pages, which cards link to and the apps serve."""

from __future__ import annotations

STARTBACK_APP_PATH = "/apps/startback"
# RULES.md v2 "Red-flag screen and stratified care": the clinician's red-flag screen (a SMART app
# writing a QuestionnaireResponse), its Questionnaire's canonical, and the patient's self-care plan.
RED_FLAGS_APP_PATH = "/apps/red-flags"
RED_FLAG_QUESTIONNAIRE_PATH = "/fhir/Questionnaire/lbp-red-flag-screen"
SELF_CARE_PATH = "/apps/self-care"
