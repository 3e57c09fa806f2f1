"""Data-centre URIs: credentials are redacted everywhere, the identity drops them, and an
S3 URI's query is checked key by key."""

from __future__ import annotations

import pyarrow.fs as pafs
import pytest

from datasets.datacentre import DataCentre
from datasets.uri import identity, open_filesystem, redact
from gridfare.errors import DataCentreError

SECRET = "wJalrXUtnFEMI-K7MDENG"


@pytest.mark.parametrize("uri", [
    f"s3://AKIDEXAMPLE:{SECRET}@bucket/dc",
    f"s3://bucket/dc?access_key=AKIDEXAMPLE&secret_key={SECRET}&region=x",
    f"s3://bucket/dc?session_token={SECRET}",
    f"gs://bucket/dc?credentials={SECRET}",
    f"hdfs://user:{SECRET}@namenode:8020/dc",
    f"https://host/x?X-Amz-Signature={SECRET}&X-Amz-Credential={SECRET}",
])
def test_redact_hides_every_credential(uri):
    shown = redact(uri)
    assert SECRET not in shown and "AKIDEXAMPLE" not in shown
    assert "***" in shown
    # inside a message, and twice
    message = redact(f"data centre {uri}: cannot open {uri}: boom")
    assert SECRET not in message and message.endswith(": boom")


def test_redact_keeps_what_is_not_secret():
    uri = "s3://bucket/dc?endpoint_override=127.0.0.1:9000&scheme=http&region=eu-west-1"
    assert redact(uri) == uri
    assert redact("/srv/gridfare/city") == "/srv/gridfare/city"
    assert redact("s3://***@bucket/dc") == "s3://***@bucket/dc"


def test_identity_drops_credentials_only():
    a = identity(f"s3://K1:{SECRET}@bucket/dc?scheme=http&endpoint_override=h:1")
    b = identity("s3://bucket/dc?endpoint_override=h:1&secret_key=other&access_key=K2"
                 "&scheme=http")
    assert a == b == "s3://bucket/dc?endpoint_override=h%3A1&scheme=http"
    assert identity("/srv/city") == "/srv/city"
    assert identity("s3://bucket/other") != identity("s3://bucket/dc")


def test_s3_query_is_checked_by_key_and_never_echoes_a_secret():
    fs, root = open_filesystem(f"s3://bucket/dc/?access_key=K&secret_key={SECRET}"
                               "&scheme=http&endpoint_override=127.0.0.1:1"
                               "&connect_timeout=0.5&allow_bucket_creation=true")
    assert isinstance(fs, pafs.S3FileSystem) and root == "bucket/dc"
    for query, words in ((f"secretkey={SECRET}", "unknown query key 'secretkey'"),
                         ("allow_bucket_creation=maybe", "true or false"),
                         ("connect_timeout=soon", "number of seconds"),
                         (f"secret_key={SECRET}", "secret_key without access_key")):
        with pytest.raises(DataCentreError, match=words) as caught:
            DataCentre(f"s3://bucket/dc?{query}")
        assert SECRET not in str(caught.value)
    with pytest.raises(DataCentreError, match="no bucket"):
        open_filesystem("s3:///dc")


def test_repr_and_messages_of_a_data_centre_are_redacted(tmp_path):
    centre = DataCentre(f"s3://K:{SECRET}@bucket/dc?endpoint_override=127.0.0.1:1"
                        "&scheme=http&connect_timeout=0.2&request_timeout=0.2")
    assert SECRET not in repr(centre) and centre.shown == (
        "s3://***@bucket/dc?endpoint_override=127.0.0.1:1&scheme=http&connect_timeout=0.2"
        "&request_timeout=0.2")
    assert centre.uri.count(SECRET) == 1  # the URI itself still reaches the tasks
