"""channels/sms/signature.py agrees with Twilio's own RequestValidator and refuses forgeries."""
from __future__ import annotations

import secrets

import pytest
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from channels.sms.signature import compute_signature, is_valid_signature, url_variants

# Twilio's published example, as in the official libraries' own tests (twilio-python, -php,
# -csharp). Its numbers are +14158675309: with +12349013030 the same token and URL give
# "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", not the published signature.
DOC_TOKEN = "12345"
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = {
    "CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234",
    "From": "+14158675309", "To": "+18005551212",
}
# The same request signed over the URL with the default port (twilio-csharp's test vector).
DOC_SIGNATURE_WITH_PORT = "kvajT1Ptam85bY51eRf/AJRuM3w="
DOC_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="

SMS = {"MessageSid": "SM" + "0" * 32, "From": "+15550100101", "To": "+15550100199",
       "Body": "Hi, synthetic", "NumMedia": "0"}
CASES = [
    ("https://bot.example.org/sms/inbound", SMS),
    ("https://bot.example.org:443/sms/inbound", SMS),
    ("http://127.0.0.1:8080/sms/inbound", SMS),
    ("https://bot.example.org/sms/inbound?site=2&x=a%20b", SMS),
    ("https://bot.example.org/sms/inbound", {**SMS, "Body": "Können wir verschieben? 👍 日本語"}),
    ("https://bot.example.org/sms/inbound", {}),
]


def test_documented_vector_holds_for_twilio_and_for_us():
    assert RequestValidator(DOC_TOKEN).compute_signature(DOC_URL, DOC_PARAMS) == DOC_SIGNATURE
    assert RequestValidator(DOC_TOKEN).validate(DOC_URL, DOC_PARAMS, DOC_SIGNATURE)
    assert compute_signature(DOC_TOKEN, DOC_URL, DOC_PARAMS) == DOC_SIGNATURE
    assert is_valid_signature(DOC_TOKEN, DOC_URL, DOC_PARAMS, DOC_SIGNATURE)
    assert compute_signature(DOC_TOKEN, DOC_URL, list(DOC_PARAMS.items())[::-1]) == DOC_SIGNATURE
    assert RequestValidator(DOC_TOKEN).validate(DOC_URL, DOC_PARAMS, DOC_SIGNATURE_WITH_PORT)
    assert is_valid_signature(DOC_TOKEN, DOC_URL, DOC_PARAMS, DOC_SIGNATURE_WITH_PORT)


@pytest.mark.parametrize("url,params", CASES)
def test_agrees_with_twilio_in_both_directions(url, params):
    token = secrets.token_hex(16)
    twilio = RequestValidator(token)
    ours = compute_signature(token, url, params)
    assert ours == twilio.compute_signature(url, params)
    assert twilio.validate(url, params, ours)
    assert is_valid_signature(token, url, params, twilio.compute_signature(url, params))


@pytest.mark.parametrize("signed,received", [
    ("https://bot.example.org:443/sms/inbound", "https://bot.example.org/sms/inbound"),
    ("https://bot.example.org/sms/inbound", "https://bot.example.org:443/sms/inbound"),
    ("http://bot.example.org:80/sms?a=1", "http://bot.example.org/sms?a=1"),
    ("https://bot.example.org:443/sms?a=1", "https://bot.example.org/sms?a=1"),
])
def test_default_port_is_accepted_either_way_like_twilio(signed, received):
    token = secrets.token_hex(16)
    signature = RequestValidator(token).compute_signature(signed, SMS)
    assert RequestValidator(token).validate(received, SMS, signature)
    assert is_valid_signature(token, received, SMS, signature)


def test_non_default_port_is_not_interchangeable():
    token = secrets.token_hex(16)
    signature = compute_signature(token, "https://bot.example.org/sms", SMS)
    assert not is_valid_signature(token, "https://bot.example.org:8443/sms", SMS, signature)
    assert url_variants("https://bot.example.org:8443/sms") == ["https://bot.example.org:8443/sms"]
    assert url_variants("ftp://bot.example.org/sms") == ["ftp://bot.example.org/sms"]


def test_mixed_case_host_with_default_port_agrees_with_twilio():
    """Twilio signs the configured URL verbatim; a variant must keep the host's spelling."""
    token = secrets.token_hex(16)
    signed, received = "https://Bot.Example.org:443/sms", "https://Bot.Example.org/sms"
    signature = RequestValidator(token).compute_signature(signed, SMS)
    assert RequestValidator(token).validate(received, SMS, signature)
    assert is_valid_signature(token, received, SMS, signature)


def test_repeated_parameter_values_match_twilios_duplicate_vector():
    form = MultiDict([("Sid", "CA123"), ("SidAccount", "AC123"),
                      ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")])
    assert RequestValidator(DOC_TOKEN).compute_signature(DOC_URL, form) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    assert is_valid_signature(DOC_TOKEN, DOC_URL, form, "IK+Dwps556ElfBT0I3Rgjkr1wJU=")


def test_rejects_wrong_or_missing_signature_wrong_token_and_modified_parameters():
    token = secrets.token_hex(16)
    url = "https://bot.example.org/sms/inbound"
    good = compute_signature(token, url, SMS)
    assert is_valid_signature(token, url, SMS, good)
    assert not is_valid_signature(token, url, SMS, "")
    assert not is_valid_signature(token, url, SMS, None)
    assert not is_valid_signature(token, url, SMS, ("A" if good[0] != "A" else "B") + good[1:])
    assert not is_valid_signature(token, url, SMS, "é" * len(good))
    assert not is_valid_signature(secrets.token_hex(16), url, SMS, good)
    assert not is_valid_signature("", url, SMS, compute_signature("", url, SMS))  # no token, no trust
    assert not is_valid_signature(token, url, {**SMS, "Body": "Hi, synthetic!"}, good)
    assert not is_valid_signature(token, url, {**SMS, "From": "+15550100102"}, good)
    assert not is_valid_signature(token, url, {**SMS, "Extra": ""}, good)
    assert not is_valid_signature(token, url + "?x=1", SMS, good)
    assert not is_valid_signature(token, "http://bot.example.org/sms/inbound", SMS, good)
    # Moving a value between parameters changes the signed string.
    assert not is_valid_signature(token, url, {**SMS, "From": SMS["To"], "To": SMS["From"]}, good)
