"""Amazon Data Firehose and S3 as moto (in server mode) implements them, for tests/aws.rs.

    moto_firehose.py setup PORT OUT   makes an IAM user allowed to put records and read the
                                      bucket, a bucket, and a Firehose stream to it; writes the
                                      user's keys to OUT; then switches moto's request
                                      authentication on (a wrong signature is refused from here)
    moto_firehose.py fetch PORT KEYS OUT
                                      writes every object of the bucket, gunzipped when it is
                                      gzip (members end to end), to OUT as JSON
"""
import gzip
import json
import sys
import urllib.request

import botocore.session

STREAM = "relay-to-s3"
BUCKET = "relay-logs"
REGION = "us-east-1"


def client(port, service, key="setup", secret="setup"):
    return botocore.session.get_session().create_client(
        service,
        region_name=REGION,
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )


def setup(port, out):
    iam = client(port, "iam")
    iam.create_user(UserName="relay")
    iam.put_user_policy(
        UserName="relay",
        PolicyName="put-and-read",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "firehose:PutRecordBatch", "Resource": "*"},
                    {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                ],
            }
        ),
    )
    keys = iam.create_access_key(UserName="relay")["AccessKey"]
    client(port, "s3").create_bucket(Bucket=BUCKET)
    client(port, "firehose").create_delivery_stream(
        DeliveryStreamName=STREAM,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{BUCKET}",
            "Prefix": "lambda/",
        },
    )
    with open(out, "w") as f:
        json.dump(
            {"key": keys["AccessKeyId"], "secret": keys["SecretAccessKey"], "stream": STREAM}, f
        )
    # From now on every request must be signed by a key moto knows, with the right secret.
    reset = urllib.request.Request(
        f"http://127.0.0.1:{port}/moto-api/reset-auth",
        data=b"0",
        method="POST",
        # Not a form: moto reads the count from the raw body.
        headers={"Content-Type": "text/plain"},
    )
    urllib.request.urlopen(reset).read()


def fetch(port, keys_file, out):
    with open(keys_file) as f:
        keys = json.load(f)
    s3 = client(port, "s3", keys["key"], keys["secret"])
    objects = []
    for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        data = s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
        gzipped = data[:2] == b"\x1f\x8b"
        if gzipped:
            data = gzip.decompress(data)
        objects.append({"key": o["Key"], "gzip": gzipped, "text": data.decode()})
    with open(out, "w") as f:
        json.dump(objects, f)


if __name__ == "__main__":
    if sys.argv[1] == "setup":
        setup(sys.argv[2], sys.argv[3])
    else:
        fetch(sys.argv[2], sys.argv[3], sys.argv[4])
