"""Clinical thresholds, each with the guideline that sets it (RULES.md).

Pure data: the service's Settings carry one RuleConfig (env `CDS_RULES__<NAME>`), and every
rule reads its numbers from here, never from a literal in the rule body.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RuleConfig(BaseModel):
    """Thresholds and look-back windows of the low-back-pain rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # ACP 2017 / ACR AC 2021 / Choosing Wisely (NASS): no imaging in the first 6 weeks without red flags.
    imaging_window_days: int = Field(42, ge=1)
    # ACP 2011: age over 50 is a weaker cancer risk factor; named in the card, never a red flag alone.
    imaging_weaker_risk_age_years: int = Field(50, ge=0)
    # Fever: >= 38.0 Cel is convention (CDC "fever" >= 100.4 [degF]); guidelines give no number.
    fever_celsius: float = 38.0
    fever_window_days: int = Field(14, ge=1)
    # CMS166v7 exclusion windows.
    spinal_infection_window_days: int = Field(365, ge=1)
    iv_drug_use_window_days: int = Field(365, ge=1)
    corticosteroid_window_days: int = Field(365, ge=1)
    corticosteroid_cumulative_days: int = Field(90, ge=1)
    trauma_window_days: int = Field(90, ge=1)
    cauda_equina_window_days: int = Field(365, ge=1)
    neuro_deficit_window_days: int = Field(365, ge=1)
    weight_loss_window_days: int = Field(365, ge=1)
    # CDC 2022: pause at >= 50 MME/day (offer naloxone); >= 90 MME/day is high risk.
    mme_caution_per_day: float = 50.0
    mme_high_per_day: float = 90.0
    # Not a guideline figure: a data-entry guard. Above this an order's MME/day is taken as an
    # error (a dose in mcg entered as mg, a period of seconds) and "cannot be computed" (RULES.md
    # "Doses"); 10,000 is over a hundred times the CDC high-risk line.
    mme_implausible_per_day: float = Field(10_000.0, gt=0)
    # CDC 2022 Rec 6: acute pain, a few days; more than 7 days rarely needed.
    opioid_max_days_supply: int = Field(7, ge=1)
    # RULES.md "Current orders": an active order whose days supply cannot be computed is current
    # when authored within this many days (not a guideline figure: about one 90-day fill).
    current_order_days: int = Field(90, ge=0)
    # Cyclobenzaprine label / ACP 2017: short courses (2-3 weeks).
    muscle_relaxant_max_days: int = Field(21, ge=1)
    muscle_relaxant_suggested_days: int = Field(14, ge=1)
    # AGS Beers 2023: avoid listed muscle relaxants from 65 years.
    beers_age_years: int = Field(65, ge=0)
    # NICE NG59 1.1.2: stratify each new episode; a result is current for 180 days.
    startback_lookback_days: int = Field(180, ge=1)
    # NICE NG59 1.1.2 "each new episode" (RULES.md v2): screen only when the onset is within the
    # last 90 days (inclusive) or unknown; an older (chronic) episode without a result gets no card.
    startback_new_episode_days: int = Field(90, ge=0)
    # RULES.md v2 "Red-flag screen": a screen records the patient at one visit; it counts for 14
    # days (a screen 14 days old included), as a fever does, and only within the episode.
    red_flag_screen_days: int = Field(14, ge=1)
    # Every guideline behind the cards (ACP 2017, CDC 2022, Beers, STarT Back) is for adults.
    min_age_years: int = Field(18, ge=0)
    # CDC 2022 opioid CDS "End of Life Assessment": a hospice discharge within the last year.
    end_of_life_encounter_window_days: int = Field(365, ge=1)
