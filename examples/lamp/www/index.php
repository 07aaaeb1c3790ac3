<?php
// The LAMP example's page: a guest book kept in MariaDB.
//
//   GET /                      adds a "visit" row, shows every row (HTML)
//   GET /?add=TEXT             adds a row with TEXT, shows every row (HTML)
//   GET /?format=text          every row, plain text, adds nothing:
//                                rows: N
//                                ID<TAB>CREATED_AT<TAB>CLIENT<TAB>NOTE   (one line per row)
//   GET /?format=json          the same as JSON: {"server":..., "rows":[...]}
//   GET /?format=text&add=TEXT adds TEXT first, then answers as above
//   GET /?format=health        "ok" when the database answers SELECT 1 at
//                              once (no retry), else 503: for healthchecks
//
// The database comes from the environment: DB_HOST (default db), DB_PORT
// (3306), DB_NAME, DB_USER, DB_PASSWORD or DB_PASSWORD_FILE. A database that
// is not up yet is retried for DB_RETRY_SECONDS (default 5); after that the
// page answers 503.

declare(strict_types=1);

function env(string $name, string $default = ''): string
{
    $value = getenv($name);
    return $value === false || $value === '' ? $default : $value;
}

function connect(float $retry_seconds): PDO
{
    $password = env('DB_PASSWORD');
    $file = env('DB_PASSWORD_FILE');
    if ($file !== '') {
        $password = rtrim((string) @file_get_contents($file), "\r\n");
    }
    $dsn = sprintf(
        'mysql:host=%s;port=%d;dbname=%s;charset=utf8mb4',
        env('DB_HOST', 'db'),
        (int) env('DB_PORT', '3306'),
        env('DB_NAME', 'lamp')
    );
    $deadline = microtime(true) + $retry_seconds;
    while (true) {
        try {
            return new PDO($dsn, env('DB_USER', 'lamp'), $password, [
                PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
                PDO::ATTR_DEFAULT_FETCH_MODE => PDO::FETCH_ASSOC,
                PDO::ATTR_TIMEOUT => 2,
            ]);
        } catch (PDOException $e) {
            if (microtime(true) >= $deadline) {
                throw $e;
            }
            usleep(200000);
        }
    }
}

$format = $_GET['format'] ?? 'html';
if (!in_array($format, ['html', 'text', 'json', 'health'], true)) {
    http_response_code(400);
    header('Content-Type: text/plain; charset=utf-8');
    echo "format must be html, text, json or health\n";
    exit;
}
if ($format === 'health') {
    header('Content-Type: text/plain; charset=utf-8');
    try {
        connect(0.0)->query('SELECT 1');
        echo "ok\n";
    } catch (PDOException $e) {
        http_response_code(503);
        echo 'database unavailable: ', $e->getMessage(), "\n";
    }
    exit;
}
$add = $_GET['add'] ?? null;
if ($add !== null && (!is_string($add) || !preg_match('//u', $add))) {
    http_response_code(400);
    header('Content-Type: text/plain; charset=utf-8');
    echo "add must be one UTF-8 string\n";
    exit;
}
if ($add !== null) {
    $add = preg_replace('/^(.{255}).+$/su', '$1', $add); // the column holds 255 characters
}
if ($add === null && $format === 'html') {
    $add = 'visit';
}

try {
    $db = connect((float) env('DB_RETRY_SECONDS', '5'));
    $db->exec(
        'CREATE TABLE IF NOT EXISTS visits (
            id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
            created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
            client VARCHAR(64) NOT NULL,
            note VARCHAR(255) NOT NULL
        ) CHARACTER SET utf8mb4'
    );
    if ($add !== null) {
        $db->prepare('INSERT INTO visits (client, note) VALUES (?, ?)')
            ->execute([$_SERVER['REMOTE_ADDR'] ?? '', $add]);
    }
    $rows = $db->query('SELECT id, created_at, client, note FROM visits ORDER BY id')->fetchAll();
    $server = (string) $db->query('SELECT VERSION()')->fetchColumn();
} catch (PDOException $e) {
    error_log('lamp: database error: ' . $e->getMessage());
    http_response_code(503);
    header('Content-Type: text/plain; charset=utf-8');
    echo 'database unavailable: ', $e->getMessage(), "\n";
    exit;
}

if ($format === 'text') {
    header('Content-Type: text/plain; charset=utf-8');
    echo 'rows: ', count($rows), "\n";
    foreach ($rows as $r) {
        $note = str_replace(["\t", "\n", "\r"], ' ', $r['note']);
        echo $r['id'], "\t", $r['created_at'], "\t", $r['client'], "\t", $note, "\n";
    }
    exit;
}
if ($format === 'json') {
    header('Content-Type: application/json');
    foreach ($rows as &$r) {
        $r['id'] = (int) $r['id'];
    }
    unset($r);
    echo json_encode(
        ['server' => $server, 'host' => gethostname(), 'count' => count($rows), 'rows' => $rows],
        JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE
    ), "\n";
    exit;
}

$h = fn ($s) => htmlspecialchars((string) $s, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
header('Content-Type: text/html; charset=utf-8');
?>
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>berth LAMP example</title>
<style>
body { font-family: sans-serif; margin: 2em auto; max-width: 50em; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ccc; padding: .3em .6em; text-align: left; }
</style>
</head>
<body>
<h1>Hello from berth</h1>
<p>Apache, PHP <?= $h(PHP_VERSION) ?>,
MariaDB <?= $h($server) ?>; page served by container <?= $h(gethostname()) ?>.
Every visit adds a row; the rows live in the named volume <code>dbdata</code>.</p>
<form method="get"><input name="add" maxlength="255" placeholder="a note"> <button>Add</button></form>
<table>
<tr><th>#</th><th>when</th><th>from</th><th>note</th></tr>
<?php foreach ($rows as $r): ?>
<tr><td><?= $h($r['id']) ?></td><td><?= $h($r['created_at']) ?></td><td><?= $h($r['client']) ?></td><td><?= $h($r['note']) ?></td></tr>
<?php endforeach ?>
</table>
<p><?= count($rows) ?> rows. Also as <a href="?format=text">text</a> and <a href="?format=json">JSON</a>.</p>
</body>
</html>
