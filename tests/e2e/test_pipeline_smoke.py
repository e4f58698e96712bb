import json


def test_one_request_goes_all_the_way(pipeline, simulator):
    pipeline.submit(
        [
            json.dumps(
                {
                    "request_id": "r-1",
                    "source": {"contact_ids": ["c1", "c2"]},
                    "tag_ids": ["t1"],
                    "metadata": {"origin": "crm"},
                }
            )
        ]
    )
    assert pipeline.run_until_settled(1, timeout=30)
    [event] = pipeline.results
    assert event["state"] == "completed", event
    assert event["metadata"] == {"origin": "crm"}
