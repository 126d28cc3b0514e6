# The test S3 servers' credentials and the variables that point ferry at
# one (sourced, not run). Used by services/s3.sh and services/moto.sh.

S3_ACCESS_KEY="ferry-test-access"
S3_SECRET_KEY="ferry-test-secret-key-0123456789"
S3_REGION="us-east-1"

# print_s3_env PORT: the `export` lines for a server on 127.0.0.1:PORT.
print_s3_env() {
  echo "export MINIO_ENDPOINT=http://127.0.0.1:$1"
  echo "export MINIO_ACCESS_KEY=$S3_ACCESS_KEY"
  echo "export MINIO_SECRET_KEY=$S3_SECRET_KEY"
  echo "export MINIO_REGION=$S3_REGION"
}
