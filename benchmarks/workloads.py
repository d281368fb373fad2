"""
The workloads the benchmarks time: the onboarding config of groups A and B,
built here so that both libraries read the very same JSON.
"""

import json

PERCENTAGE_KEY = "percentage4x25"
PLAN_SPLIT_KEY = "onboardingFeature"

FEATURES = ("default", "feature1", "feature2", "feature3")


def _option(percentage, value, variation_id):
    return {"p": percentage, "v": {"s": value}, "i": variation_id}


def onboarding_config():
    """
    The config_v6 text of groups A and B, one setting each.

    :return: JSON text with the percentage flag and the plan-split flag.
    """
    quarters = [_option(25, value, f"v{i}") for i, value in enumerate(FEATURES)]
    split = [
        _option(34, "feature1", "s1"),
        _option(33, "feature2", "s2"),
        _option(33, "feature3", "s3"),
    ]
    free_plan = {"u": {"a": "plan", "c": 0, "l": ["free"]}}
    document = {
        "p": {
            "u": "https://cdn-global.configcat.com",
            "r": 0,
            "s": "uM29sy1rjx71ze3ehr--benchmark-salt--sWfSJmZ5qg=",
        },
        "f": {
            PERCENTAGE_KEY: {
                "t": 1,
                "p": quarters,
                "v": {"s": "default"},
                "i": "v0",
            },
            PLAN_SPLIT_KEY: {
                "t": 1,
                "r": [{"c": [free_plan], "p": split}],
                "v": {"s": "default"},
                "i": "d0",
            },
        },
    }
    return json.dumps(document)


def check_same_values(config, client, flagstaff_users, configcat_users, key):
    # The two sides must do the same work: same value for every user, and
    # every variation served to someone.
    ours = [config.get_value(key, "default", user) for user in flagstaff_users]
    theirs = [client.get_value(key, "default", user) for user in configcat_users]
    assert ours == theirs
    assert set(ours) == set(FEATURES)
