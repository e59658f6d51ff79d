// The demo page's publish: POST /api/messages with the message and topic. Imported by app.js.
//
// publish(message, topic) POSTs the message; resolves to the accepted event's data, or rejects
// with an Error whose message is fit to show (the server's own error text for 4xx and 5xx
// answers).
export function publish(message, topic) {
  return fetch('/api/messages', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
    body: JSON.stringify({ message: message, topic: topic })
  }).then(function (response) {
    return response.text().then(function (text) {
      var body = null;
      try {
        body = text ? JSON.parse(text) : null;
      } catch (err) {
        body = null;
      }
      if (!response.ok) {
        var reason = body && typeof body.error === 'string' ? body.error
          : 'The server answered ' + response.status + ' ' + response.statusText + '.';
        var failure = new Error(reason);
        failure.status = response.status;
        throw failure;
      }
      return body && body.data ? body.data : {};
    });
  }, function () {
    throw new Error('Could not reach the server. Is ssehub running?');
  });
}
