// The hello app's server code: a visit counter kept in fazt.app.kv.
// GET /api            -> a greeting (try ?name=you)
// GET /api/visits     -> the count
// POST /api/visits    -> count one more visit
const { greet } = require('./greet.js');
const kv = fazt.app.kv;

if (request.path === '/api/visits') {
  let visits = kv.get('visits') || 0;
  if (request.method === 'POST') {
    visits += 1;
    kv.set('visits', visits);
    console.log('visit', visits);
  }
  ({ visits });
} else {
  ({ message: greet(request.query.name), app: fazt.app.name });
}
