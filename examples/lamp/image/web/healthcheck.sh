#!/bin/sh
# The web image's healthcheck, for a compose `healthcheck.test`: healthy when
# Apache answers on 127.0.0.1:80 and the page reaches its database
# (index.php?format=health answers "ok"). Exit 0 when healthy, 1 otherwise.
# shellcheck disable=SC2016 # PHP code, $ is PHP's
exec php -d display_errors=stderr -r '
$ctx = stream_context_create(["http" => ["timeout" => 3, "ignore_errors" => true]]);
$body = @file_get_contents("http://127.0.0.1/?format=health", false, $ctx);
if ($body === "ok\n") {
    exit(0);
}
fwrite(STDERR, "healthcheck.sh: " . ($body === false ? "Apache does not answer on 127.0.0.1:80" : trim($body)) . "\n");
exit(1);
'
