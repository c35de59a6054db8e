"""What the GitHub Actions workflows do beyond the commands a person types (``invoke ci.*``):
write the credentials the secrets hold (credentials), report a plan in the job summary and as
one pull request comment (report), tell Slack how a deploy went (slack), pin the manifests'
images to the application's released digests (images). Each runs the same on a laptop."""
