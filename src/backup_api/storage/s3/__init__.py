"""S3-compatible destinations (botocore): where a bucket is, the client, the objects, and
the upload process that streams one archive to several buckets at once."""
